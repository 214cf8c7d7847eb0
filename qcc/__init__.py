"""qcc: one stable local URL in front of many Anthropic-API accounts."""

__version__ = "0.1.0"
