"""Reaching accounts over the network: the HTTP/1.1 client, dialing, outbound proxies.

A leaf package: it imports nothing else from qcc, so the proxy, the health probes and the CLI
share one HTTP path.
"""
