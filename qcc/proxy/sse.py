"""Just enough SSE to fail over safely and count tokens, without slowing the stream. Pure.

Before a stream is committed the proxy parses whole events (:func:`next_event`) to find the first
one that carries the message. After that it only *watches* the raw chunks
(:class:`StreamWatcher`): a substring test per chunk, and a small capture of the one
``message_delta`` event that carries the final usage.
"""

from __future__ import annotations

import json
import re
import zlib
from typing import Any

USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)
_QUOTED_KEYS = tuple((f'"{key}"'.encode(), key) for key in USAGE_KEYS)
_NUMBER_RE = re.compile(rb"\s*:\s*(\d+)")
_MARK = 16  # longest marker we look for, so a marker split across two chunks is still seen


def next_event(buf: bytes, start: int) -> tuple[str | None, bytes, int] | None:
    """The complete event at ``buf[start:]`` as (event name, data, end index), or None.

    Events end with a blank line (``\\n\\n`` or ``\\r\\n\\r\\n``). Comment-only events give
    name None.
    """
    end = buf.find(b"\n\n", start)
    # A CRLF event ends before any "\n\n" would: only look that far (or everywhere if none).
    crlf = buf.find(b"\r\n\r\n", start, end + 2 if end != -1 else len(buf))
    if crlf != -1 and (end == -1 or crlf < end):
        block, after = buf[start:crlf], crlf + 4
    elif end != -1:
        block, after = buf[start:end], end + 2
    else:
        return None
    name: str | None = None
    data: list[bytes] = []
    for line in block.splitlines():
        if line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
        elif line.startswith(b"data:"):
            data.append(line[5:].lstrip(b" "))
    if name is None and data:
        name = "message"  # SSE's default event type
    return name, b"\n".join(data), after


def parse_data(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def error_type(data: bytes) -> str:
    """The Anthropic error type of an ``event: error`` payload (e.g. ``overloaded_error``)."""
    error = parse_data(data).get("error")
    return str(error.get("type", "")) if isinstance(error, dict) else ""


def usage_numbers(blob: bytes) -> dict[str, int]:
    """Token counts after the last ``"usage"`` key of a JSON blob, without parsing all of it."""
    at = blob.rfind(b'"usage"')
    if at == -1:
        return {}
    usage: dict[str, int] = {}
    # The usage object is small, but may nest (cache_creation, server_tool_use): a bounded window.
    # One find per key beats one regex over the window (the quotes keep "input_tokens" from
    # matching inside "cache_read_input_tokens").
    end = at + 1024
    for quoted, key in _QUOTED_KEYS:
        found = blob.find(quoted, at, end)
        if found != -1 and (m := _NUMBER_RE.match(blob, found + len(quoted))) is not None:
            usage[key] = int(m.group(1))
    return usage


def error_event(kind: str, message: str) -> bytes:
    """An Anthropic ``event: error`` SSE event."""
    payload = json.dumps({"type": "error", "error": {"type": kind, "message": message}})
    return f"event: error\ndata: {payload}\n\n".encode()


class StreamWatcher:
    """Watches a committed stream's chunks for ``message_delta`` usage and ``message_stop``.

    One ``find`` per chunk for ``message_`` (the prefix of both), plus a look at the 32 bytes
    around each chunk boundary so a marker split in two is still seen.
    """

    __slots__ = ("_capture", "_carry", "stopped", "usage")

    def __init__(self) -> None:
        self._carry = b""
        self._capture: bytes | None = None
        self.stopped = False
        self.usage: dict[str, int] = {}

    def feed(self, chunk: bytes) -> None:
        carry = self._carry
        self._carry = chunk[-_MARK:] if len(chunk) >= _MARK else (carry + chunk)[-_MARK:]
        if self._capture is not None:
            self._capture += chunk
            self._finish_capture()
            return
        if carry:
            joint = carry + chunk[:_MARK]
            if b"message_delta" in joint:
                self._capture = joint[joint.find(b"message_delta") :] + chunk[_MARK:]
                self._finish_capture()
                return
            if b"message_stop" in joint:
                self.stopped = True
        at = chunk.find(b"message_")
        while at != -1:
            if chunk.startswith(b"delta", at + 8):
                self._capture = chunk[at:]
                self._finish_capture()
                return
            if chunk.startswith(b"stop", at + 8):
                self.stopped = True
            at = chunk.find(b"message_", at + 8)

    def _finish_capture(self) -> None:
        capture = self._capture
        assert capture is not None
        data_end = capture.find(b"\n\n")
        if data_end == -1:
            if len(capture) > 65536:  # not an event we understand; stop looking
                self._capture = None
            return
        self.usage.update(usage_numbers(capture[:data_end]))
        self._capture = None
        if b"message_stop" in capture[data_end:]:
            self.stopped = True


class BodyTail:
    """The last few KB of a response body, decoded, to read its ``usage`` at the end.

    The body itself passes through untouched; only this copy of its tail is decompressed
    (gzip or deflate; other encodings are not read).
    """

    __slots__ = ("_decoder", "readable", "tail")

    KEEP = 8192

    def __init__(self, encoding: str) -> None:
        self.tail = b""
        self.readable = encoding in ("", "identity", "gzip", "deflate")
        self._decoder = None
        if encoding == "gzip":
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = zlib.decompressobj()

    def feed(self, chunk: bytes) -> None:
        if not self.readable:
            return
        if self._decoder is not None:
            try:
                chunk = self._decoder.decompress(chunk)
            except zlib.error:
                self.readable = False
                return
        keep = self.KEEP
        self.tail = (self.tail + chunk)[-keep:] if len(chunk) < keep else chunk[-keep:]

    def usage(self) -> dict[str, int]:
        return usage_numbers(self.tail) if self.readable else {}
