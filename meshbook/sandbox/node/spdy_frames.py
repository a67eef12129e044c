"""SPDY/3.1 frames on the wire: encoding, incremental decoding, compressed header blocks.

What kubectl (1.30 and earlier directly; 1.31+ tunnelled in WebSocket binary messages) and the
kubelet speak for port-forward, exec and attach, through `moby/spdystream`. Facts from the SPDY
Protocol Draft 3 (and 3.1: the session-level WINDOW_UPDATE on stream 0):

* control frame: `1 | version(15) = 3 | type(16)`, `flags(8) | length(24)`, payload;
  data frame: `0 | stream id(31)`, `flags(8) | length(24)`, payload.
* header blocks (SYN_STREAM, SYN_REPLY, HEADERS) hold `count(32)` then `len(32) name len(32) value`
  pairs, names lower case, several values of one name joined by NUL; the block is zlib-compressed
  with the spec's fixed dictionary, one compression context per direction for the whole session
  (each block ends with a sync flush, so the peer can decode it at once).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "HEADER_DICTIONARY",
    "SPDY_VERSION",
    "DataFrame",
    "Frame",
    "FrameDecoder",
    "FrameEncoder",
    "GoAwayFrame",
    "GoAwayStatus",
    "HeaderList",
    "HeadersFrame",
    "PingFrame",
    "RstStatus",
    "RstStreamFrame",
    "SettingId",
    "SettingsFrame",
    "SpdyProtocolError",
    "SynReplyFrame",
    "SynStreamFrame",
    "WindowUpdateFrame",
]

SPDY_VERSION = 3
MAX_FRAME_LENGTH = 0xFFFFFF
MAX_HEADER_BLOCK = 256 * 1024  # decompressed; a bigger block is a protocol error, not a memory bomb

# The SPDY/3 header dictionary: length-prefixed words, then a run of raw text (spec section 2.6.10.1).
_DICTIONARY_WORDS = (
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
)
_DICTIONARY_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized"
    "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)


def _dictionary() -> bytes:
    words = b"".join(len(w).to_bytes(4, "big") + w.encode("ascii") for w in _DICTIONARY_WORDS)
    return words + _DICTIONARY_TAIL.encode("ascii")


HEADER_DICTIONARY = _dictionary()
"""The zlib preset dictionary of SPDY/3 header blocks (1423 bytes, adler32 0xe3c6a7c2)."""

HeaderList = tuple[tuple[str, str], ...]
"""Header (name, value) pairs in order; a name may repeat (sent as one NUL-joined value)."""


class ControlType(IntEnum):
    SYN_STREAM = 1
    SYN_REPLY = 2
    RST_STREAM = 3
    SETTINGS = 4
    PING = 6
    GOAWAY = 7
    HEADERS = 8
    WINDOW_UPDATE = 9


class RstStatus(IntEnum):
    """RST_STREAM status codes."""

    PROTOCOL_ERROR = 1
    INVALID_STREAM = 2
    REFUSED_STREAM = 3
    UNSUPPORTED_VERSION = 4
    CANCEL = 5
    INTERNAL_ERROR = 6
    FLOW_CONTROL_ERROR = 7
    STREAM_IN_USE = 8
    STREAM_ALREADY_CLOSED = 9
    FRAME_TOO_LARGE = 11


class GoAwayStatus(IntEnum):
    OK = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2


class SettingId(IntEnum):
    MAX_CONCURRENT_STREAMS = 4
    INITIAL_WINDOW_SIZE = 7


FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
FLAG_SETTINGS_CLEAR = 0x01


class SpdyProtocolError(Exception):
    """The peer broke the framing; `stream_id` 0 means the whole session is unusable."""

    def __init__(self, message: str, stream_id: int = 0) -> None:
        super().__init__(message)
        self.stream_id = stream_id


@dataclass(frozen=True)
class DataFrame:
    stream_id: int
    data: bytes
    fin: bool = False


@dataclass(frozen=True)
class SynStreamFrame:
    stream_id: int
    headers: HeaderList
    associated_to: int = 0
    priority: int = 0  # 0 (highest) .. 7
    slot: int = 0
    fin: bool = False
    unidirectional: bool = False


@dataclass(frozen=True)
class SynReplyFrame:
    stream_id: int
    headers: HeaderList
    fin: bool = False


@dataclass(frozen=True)
class RstStreamFrame:
    stream_id: int
    status: int


@dataclass(frozen=True)
class SettingsFrame:
    values: tuple[tuple[int, int], ...]  # (setting id, value)
    clear: bool = False


@dataclass(frozen=True)
class PingFrame:
    ping_id: int


@dataclass(frozen=True)
class GoAwayFrame:
    last_good_stream_id: int
    status: int = GoAwayStatus.OK


@dataclass(frozen=True)
class HeadersFrame:
    stream_id: int
    headers: HeaderList
    fin: bool = False


@dataclass(frozen=True)
class WindowUpdateFrame:
    stream_id: int  # 0: the session's window (SPDY/3.1)
    delta: int


Frame = (
    DataFrame
    | SynStreamFrame
    | SynReplyFrame
    | RstStreamFrame
    | SettingsFrame
    | PingFrame
    | GoAwayFrame
    | HeadersFrame
    | WindowUpdateFrame
)


def _control(kind: ControlType, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME_LENGTH:
        raise ValueError(f"SPDY {kind.name} payload of {len(payload)} bytes exceeds {MAX_FRAME_LENGTH}")
    return struct.pack(">HHI", 0x8000 | SPDY_VERSION, kind, (flags << 24) | len(payload)) + payload


def _header_block(headers: HeaderList) -> bytes:
    grouped: dict[str, list[str]] = {}
    for name, value in headers:
        grouped.setdefault(name.lower(), []).append(value)
    out = [len(grouped).to_bytes(4, "big")]
    for name, values in grouped.items():
        raw_name, raw_value = name.encode(), "\0".join(values).encode()
        out += [len(raw_name).to_bytes(4, "big"), raw_name, len(raw_value).to_bytes(4, "big"), raw_value]
    return b"".join(out)


def _parse_header_block(block: bytes, stream_id: int) -> HeaderList:
    pos = 0

    def take(size: int) -> bytes:
        nonlocal pos
        if pos + size > len(block):
            raise SpdyProtocolError("truncated header block", stream_id)
        pos += size
        return block[pos - size : pos]

    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for _ in range(int.from_bytes(take(4), "big")):
        name = take(int.from_bytes(take(4), "big")).decode("utf-8", "replace")
        value = take(int.from_bytes(take(4), "big")).decode("utf-8", "replace")
        if not name or name in seen:
            raise SpdyProtocolError(f"empty or duplicate header name {name!r}", stream_id)
        seen.add(name)
        pairs.extend((name, v) for v in value.split("\0"))
    return tuple(pairs)


class FrameEncoder:
    """Frames to bytes, with this direction's header compression context."""

    def __init__(self) -> None:
        self._zlib = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, 8, zdict=HEADER_DICTIONARY)

    def _compress(self, headers: HeaderList) -> bytes:
        return self._zlib.compress(_header_block(headers)) + self._zlib.flush(zlib.Z_SYNC_FLUSH)

    def encode(self, frame: Frame) -> bytes:
        """Must be called in sending order: header blocks share one compression context."""
        match frame:
            case DataFrame(stream_id, data, fin):
                if len(data) > MAX_FRAME_LENGTH:
                    raise ValueError(f"SPDY data frame of {len(data)} bytes exceeds {MAX_FRAME_LENGTH}")
                return struct.pack(">II", stream_id & 0x7FFFFFFF, (fin << 24) | len(data)) + data
            case SynStreamFrame(stream_id, headers, associated, priority, slot, fin, unidirectional):
                flags = (FLAG_FIN if fin else 0) | (FLAG_UNIDIRECTIONAL if unidirectional else 0)
                fixed = struct.pack(">IIBB", stream_id, associated, (priority & 7) << 5, slot)
                return _control(ControlType.SYN_STREAM, flags, fixed + self._compress(headers))
            case SynReplyFrame(stream_id, headers, fin):
                payload = stream_id.to_bytes(4, "big") + self._compress(headers)
                return _control(ControlType.SYN_REPLY, FLAG_FIN if fin else 0, payload)
            case HeadersFrame(stream_id, headers, fin):
                payload = stream_id.to_bytes(4, "big") + self._compress(headers)
                return _control(ControlType.HEADERS, FLAG_FIN if fin else 0, payload)
            case RstStreamFrame(stream_id, status):
                return _control(ControlType.RST_STREAM, 0, struct.pack(">II", stream_id, status))
            case SettingsFrame(values, clear):
                body = b"".join(struct.pack(">II", key & 0xFFFFFF, value) for key, value in values)
                payload = len(values).to_bytes(4, "big") + body
                return _control(ControlType.SETTINGS, FLAG_SETTINGS_CLEAR if clear else 0, payload)
            case PingFrame(ping_id):
                return _control(ControlType.PING, 0, ping_id.to_bytes(4, "big"))
            case GoAwayFrame(last_good, status):
                return _control(ControlType.GOAWAY, 0, struct.pack(">II", last_good, status))
            case WindowUpdateFrame(stream_id, delta):
                return _control(ControlType.WINDOW_UPDATE, 0, struct.pack(">II", stream_id, delta))
        raise TypeError(f"not a SPDY frame: {frame!r}")


_FIXED_LENGTH = {
    ControlType.RST_STREAM: 8,
    ControlType.PING: 4,
    ControlType.GOAWAY: 8,
    ControlType.WINDOW_UPDATE: 8,
}
_MIN_LENGTH = {ControlType.SYN_STREAM: 10, ControlType.SYN_REPLY: 4, ControlType.HEADERS: 4, ControlType.SETTINGS: 4}


class FrameDecoder:
    """Bytes to frames, fed in any chunking; header blocks decoded with the peer's context."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._zlib = zlib.decompressobj(zdict=HEADER_DICTIONARY)

    def feed(self, data: bytes) -> Iterator[Frame]:
        """Add `data`; yield every frame now complete. Unknown control types are skipped (spec)."""
        self._buffer += data
        while len(self._buffer) >= 8:
            first, second = struct.unpack_from(">II", self._buffer)
            length = second & 0xFFFFFF
            if len(self._buffer) < 8 + length:
                return
            payload = bytes(self._buffer[8 : 8 + length])
            del self._buffer[: 8 + length]
            flags = second >> 24
            if not first & 0x80000000:
                yield DataFrame(first & 0x7FFFFFFF, payload, bool(flags & FLAG_FIN))
                continue
            version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
            if version != SPDY_VERSION:
                raise SpdyProtocolError(f"control frame of SPDY version {version}; this server speaks 3.1")
            frame = self._control(kind, flags, payload)
            if frame is not None:
                yield frame

    def _headers(self, block: bytes, stream_id: int) -> HeaderList:
        try:
            raw = self._zlib.decompress(block, MAX_HEADER_BLOCK + 1)
        except zlib.error as exc:
            raise SpdyProtocolError(f"header block does not decompress: {exc}") from None
        if len(raw) > MAX_HEADER_BLOCK or self._zlib.unconsumed_tail:
            raise SpdyProtocolError(f"header block over {MAX_HEADER_BLOCK} bytes", stream_id)
        return _parse_header_block(raw, stream_id)

    def _control(self, kind: int, flags: int, payload: bytes) -> Frame | None:
        if kind not in ControlType.__members__.values():
            return None
        ctype = ControlType(kind)
        expected = _FIXED_LENGTH.get(ctype)
        if (expected is not None and len(payload) != expected) or len(payload) < _MIN_LENGTH.get(ctype, 0):
            raise SpdyProtocolError(f"{ctype.name} frame with a payload of {len(payload)} bytes")
        fin = bool(flags & FLAG_FIN)
        word = int.from_bytes(payload[:4], "big")
        match ctype:
            case ControlType.SYN_STREAM:
                stream_id, associated, priority, slot = struct.unpack_from(">IIBB", payload)
                headers = self._headers(payload[10:], stream_id & 0x7FFFFFFF)
                unidirectional = bool(flags & FLAG_UNIDIRECTIONAL)
                return SynStreamFrame(
                    stream_id & 0x7FFFFFFF, headers, associated & 0x7FFFFFFF, priority >> 5, slot, fin, unidirectional
                )
            case ControlType.SYN_REPLY:
                return SynReplyFrame(word & 0x7FFFFFFF, self._headers(payload[4:], word & 0x7FFFFFFF), fin)
            case ControlType.HEADERS:
                return HeadersFrame(word & 0x7FFFFFFF, self._headers(payload[4:], word & 0x7FFFFFFF), fin)
            case ControlType.RST_STREAM:
                return RstStreamFrame(word & 0x7FFFFFFF, int.from_bytes(payload[4:], "big"))
            case ControlType.SETTINGS:
                if len(payload) != 4 + 8 * word:
                    raise SpdyProtocolError(f"SETTINGS frame announces {word} entries in {len(payload)} bytes")
                pairs = struct.unpack_from(f">{2 * word}I", payload, 4)
                values = tuple((pairs[i] & 0xFFFFFF, pairs[i + 1]) for i in range(0, len(pairs), 2))
                return SettingsFrame(values, bool(flags & FLAG_SETTINGS_CLEAR))
            case ControlType.PING:
                return PingFrame(word)
            case ControlType.GOAWAY:
                return GoAwayFrame(word & 0x7FFFFFFF, int.from_bytes(payload[4:], "big"))
            case ControlType.WINDOW_UPDATE:
                return WindowUpdateFrame(word & 0x7FFFFFFF, int.from_bytes(payload[4:], "big") & 0x7FFFFFFF)
        return None  # pragma: no cover - every ControlType is matched above
