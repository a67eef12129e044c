"""One SPDY/3.1 stream as a handler sees it: headers, reply, read, write, half-close, reset.

Its session (`spdy.py`) owns the transport and the windows; the stream reaches it only through
`StreamOwner`, so the two modules do not import each other.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Protocol

from multidict import CIMultiDict, CIMultiDictProxy

from meshbook.sandbox.node.spdy_frames import (
    DataFrame,
    Frame,
    HeaderList,
    RstStatus,
    RstStreamFrame,
    SynReplyFrame,
)

__all__ = ["FlowControl", "SpdyStream", "SpdyStreamClosed", "StreamOwner", "header_list", "header_proxy"]

MAX_DATA_CHUNK = 16 * 1024  # per data frame we send
INBOUND_LIMIT = 256 * 1024  # bytes buffered per stream before the session stops reading (advisory mode)


class FlowControl(Enum):
    """ADVISORY: windows are kept and given back but never waited on (spdystream peers); ENFORCED: the spec."""

    ADVISORY = "advisory"
    ENFORCED = "enforced"


class SpdyStreamClosed(ConnectionError):
    """Writing to a stream that was half-closed by us, reset, or whose session ended."""


def header_list(headers: HeaderList | Mapping[str, str]) -> HeaderList:
    return tuple(headers.items()) if isinstance(headers, Mapping) else tuple(headers)


def header_proxy(headers: Iterable[tuple[str, str]]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(headers))


class StreamOwner(Protocol):
    """What a stream needs from its session."""

    closed: bool
    flow_control: FlowControl
    initial_receive_window: int

    async def send(self, frame: Frame) -> None: ...

    async def reserve(self, stream: SpdyStream, wanted: int) -> int: ...

    async def consumed(self, stream: SpdyStream, size: int) -> None: ...

    def forget_if_closed(self, stream: SpdyStream) -> None: ...


class SpdyStream:
    """One stream: its SYN_STREAM headers, then data both ways until each side's FIN (or a reset)."""

    def __init__(self, session: StreamOwner, stream_id: int, headers: HeaderList, send_window: int) -> None:
        self.session = session
        self.id = stream_id
        self.headers = header_proxy(headers)
        self.reply_headers: CIMultiDictProxy[str] = header_proxy(())
        self.send_window = send_window
        self.receive_window = session.initial_receive_window
        self.replied = asyncio.Event()
        self.remote_closed = False
        self.local_closed = False
        self.reset_status: int | None = None
        self._inbound: collections.deque[bytes] = collections.deque()
        self._inbound_bytes = 0
        self._readable = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self.unacked = 0
        self._discarding = False

    def __repr__(self) -> str:
        return f"SpdyStream({self.id}, {dict(self.headers)})"

    @property
    def closed(self) -> bool:
        return self.reset_status is not None or (self.local_closed and self.remote_closed)

    async def reply(self, headers: HeaderList | Mapping[str, str] = (), *, fin: bool = False) -> None:
        """SYN_REPLY: accept a stream the peer opened (spdystream's CreateStream waits for it)."""
        await self.session.send(SynReplyFrame(self.id, header_list(headers), fin))
        self.replied.set()
        if fin:
            self.local_finished()

    async def read(self) -> bytes:
        """The next data the peer sent; b"" once it half-closed (FIN) or the stream was reset."""
        while not self._inbound:
            if self.remote_closed or self.reset_status is not None:
                return b""
            self._readable.clear()
            await self._readable.wait()
        data = self._inbound.popleft()
        self._inbound_bytes -= len(data)
        if self._inbound_bytes < INBOUND_LIMIT:
            self._space.set()
        await self.session.consumed(self, len(data))
        return data

    async def write(self, data: bytes) -> None:
        """Send `data` in frames of at most MAX_DATA_CHUNK, within the windows when they are enforced."""
        view = memoryview(data)
        while view:
            self.check_writable()
            size = await self.session.reserve(self, min(len(view), MAX_DATA_CHUNK))
            await self.session.send(DataFrame(self.id, bytes(view[:size])))
            view = view[size:]

    async def close(self) -> None:
        """Half-close: FIN on an empty data frame. The peer may still send until its own FIN."""
        if self.local_closed or self.reset_status is not None or self.session.closed:
            return
        self.local_finished()
        with contextlib.suppress(ConnectionError):
            await self.session.send(DataFrame(self.id, b"", fin=True))

    async def reset(self, status: int = RstStatus.CANCEL) -> None:
        """RST_STREAM: abandon the stream both ways."""
        if self.reset_status is not None:
            return
        self.mark_reset(status)
        with contextlib.suppress(ConnectionError):
            await self.session.send(RstStreamFrame(self.id, status))

    def discard_input(self) -> None:
        """Drop whatever the peer still sends (it still counts as read for its windows)."""
        self._discarding = True
        self._inbound.clear()
        self._inbound_bytes = 0
        self._space.set()

    # -- called by the session (and the stream itself) ----------------------------------------------

    def check_writable(self) -> None:
        if self.reset_status is not None:
            raise SpdyStreamClosed(f"SPDY stream {self.id} was reset (status {self.reset_status})")
        if self.local_closed:
            raise SpdyStreamClosed(f"SPDY stream {self.id} is half-closed: no data after FIN")
        if self.session.closed:
            raise SpdyStreamClosed(f"SPDY stream {self.id}: the session ended")

    def local_finished(self) -> None:
        self.local_closed = True
        self.session.forget_if_closed(self)

    def remote_finished(self) -> None:
        self.remote_closed = True
        self._readable.set()
        self.session.forget_if_closed(self)

    def session_ended(self) -> None:
        """Readers get what arrived, then b""; writers fail; nobody waits for a reply any more."""
        self.remote_closed = self.local_closed = True
        self._readable.set()
        self._space.set()
        self.replied.set()

    def mark_reset(self, status: int) -> None:
        self.reset_status = status
        self.local_closed = self.remote_closed = True
        self._inbound.clear()
        self._readable.set()
        self._space.set()
        self.replied.set()
        self.session.forget_if_closed(self)

    async def deliver(self, data: bytes) -> bool:
        """Queue peer data; False when it was dropped at once (so its window is given back now)."""
        if self._discarding or self.reset_status is not None:
            return False
        self._inbound.append(data)
        self._inbound_bytes += len(data)
        self._readable.set()
        if self._inbound_bytes >= INBOUND_LIMIT and self.session.flow_control is FlowControl.ADVISORY:
            self._space.clear()
            await self._space.wait()  # holds the whole session, as spdystream's unbuffered channel does
        return True
