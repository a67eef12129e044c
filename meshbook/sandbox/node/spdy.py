"""A SPDY/3.1 session over any byte transport: streams the peer opens (or we open), flow control, pings.

Used by the kubelet stand-in for what kubectl sends over SPDY (port-forward; exec and attach for
kubectl 1.30 and earlier): the peer opens streams with SYN_STREAM headers (`streamType`, `port`, ...),
`accept()` hands them out, the handler answers `reply()` and reads, writes and half-closes them.
The transport is anything with `read`/`write`/`close` (`FrameTransport`): a raw upgraded HTTP/1.1
connection or WebSocket binary messages (`spdy_http.py`).

Flow control: SPDY/3.1 windows (per stream and, on stream 0, per session; 64 KiB to start) are kept
both ways and replenished with WINDOW_UPDATE as the handler reads. `moby/spdystream` (kubectl, the
kubelet) neither sends WINDOW_UPDATE nor honours one, so by default (`FlowControl.ADVISORY`) windows
are not waited on or policed; a transport that stops draining holds the writer instead.
`FlowControl.ENFORCED` is the spec's behaviour, for peers that implement it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Protocol

from multidict import CIMultiDict, CIMultiDictProxy

from meshbook.sandbox.node.spdy_frames import (
    DataFrame,
    Frame,
    FrameDecoder,
    FrameEncoder,
    GoAwayFrame,
    GoAwayStatus,
    HeaderList,
    HeadersFrame,
    PingFrame,
    RstStatus,
    RstStreamFrame,
    SettingId,
    SettingsFrame,
    SpdyProtocolError,
    SynReplyFrame,
    SynStreamFrame,
    WindowUpdateFrame,
)

__all__ = ["DEFAULT_WINDOW", "FlowControl", "FrameTransport", "SpdySession", "SpdyStream", "SpdyStreamClosed"]

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 64 * 1024  # initial stream and session window of SPDY/3.1
MAX_DATA_CHUNK = 16 * 1024  # per data frame we send
_MAX_WINDOW = 0x7FFFFFFF
_INBOUND_LIMIT = 256 * 1024  # bytes buffered per stream before the session stops reading (advisory mode)


class FrameTransport(Protocol):
    """Ordered bytes both ways; `read` returns b"" at the end."""

    async def read(self) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class FlowControl(Enum):
    ADVISORY = "advisory"
    ENFORCED = "enforced"


class SpdyStreamClosed(ConnectionError):
    """Writing to a stream that was half-closed by us, reset, or whose session ended."""


def _header_list(headers: HeaderList | Mapping[str, str]) -> HeaderList:
    return tuple(headers.items()) if isinstance(headers, Mapping) else tuple(headers)


def _proxy(headers: Iterable[tuple[str, str]]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(headers))


class SpdyStream:
    """One stream: its SYN_STREAM headers, then data both ways until each side's FIN (or a reset)."""

    def __init__(self, session: SpdySession, stream_id: int, headers: HeaderList, send_window: int) -> None:
        self.session = session
        self.id = stream_id
        self.headers = _proxy(headers)
        self.reply_headers: CIMultiDictProxy[str] = _proxy(())
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
        self._unacked = 0
        self._discarding = False

    def __repr__(self) -> str:
        return f"SpdyStream({self.id}, {dict(self.headers)})"

    @property
    def closed(self) -> bool:
        return self.reset_status is not None or (self.local_closed and self.remote_closed)

    async def reply(self, headers: HeaderList | Mapping[str, str] = (), *, fin: bool = False) -> None:
        """SYN_REPLY: accept a stream the peer opened (spdystream's CreateStream waits for it)."""
        await self.session.send(SynReplyFrame(self.id, _header_list(headers), fin))
        self.replied.set()
        if fin:
            self._local_finished()

    async def read(self) -> bytes:
        """The next data the peer sent; b"" once it half-closed (FIN) or the stream was reset."""
        while not self._inbound:
            if self.remote_closed or self.reset_status is not None:
                return b""
            self._readable.clear()
            await self._readable.wait()
        data = self._inbound.popleft()
        self._inbound_bytes -= len(data)
        if self._inbound_bytes < _INBOUND_LIMIT:
            self._space.set()
        await self.session.consumed(self, len(data))
        return data

    async def write(self, data: bytes) -> None:
        """Send `data` in frames of at most MAX_DATA_CHUNK, within the windows when they are enforced."""
        view = memoryview(data)
        while view:
            self._check_writable()
            size = await self.session.reserve(self, min(len(view), MAX_DATA_CHUNK))
            await self.session.send(DataFrame(self.id, bytes(view[:size])))
            view = view[size:]

    async def close(self) -> None:
        """Half-close: FIN on an empty data frame. The peer may still send until its own FIN."""
        if self.local_closed or self.reset_status is not None or self.session.closed:
            return
        self._local_finished()
        with contextlib.suppress(ConnectionError):
            await self.session.send(DataFrame(self.id, b"", fin=True))

    async def reset(self, status: int = RstStatus.CANCEL) -> None:
        """RST_STREAM: abandon the stream both ways."""
        if self.reset_status is not None:
            return
        self._mark_reset(status)
        with contextlib.suppress(ConnectionError):
            await self.session.send(RstStreamFrame(self.id, status))

    def discard_input(self) -> None:
        """Drop whatever the peer still sends (it still counts as read for its windows)."""
        self._discarding = True
        self._inbound.clear()
        self._inbound_bytes = 0
        self._space.set()

    # -- called by the session ----------------------------------------------------------------------

    def _check_writable(self) -> None:
        if self.reset_status is not None:
            raise SpdyStreamClosed(f"SPDY stream {self.id} was reset (status {self.reset_status})")
        if self.local_closed:
            raise SpdyStreamClosed(f"SPDY stream {self.id} is half-closed: no data after FIN")
        if self.session.closed:
            raise SpdyStreamClosed(f"SPDY stream {self.id}: the session ended")

    def _local_finished(self) -> None:
        self.local_closed = True
        self.session.forget_if_closed(self)

    def _remote_finished(self) -> None:
        self.remote_closed = True
        self._readable.set()
        self.session.forget_if_closed(self)

    def _mark_reset(self, status: int) -> None:
        self.reset_status = status
        self.local_closed = self.remote_closed = True
        self._inbound.clear()
        self._readable.set()
        self._space.set()
        self.replied.set()
        self.session.forget_if_closed(self)

    async def _deliver(self, data: bytes) -> bool:
        """Queue peer data; False when it was dropped at once (so its window is given back now)."""
        if self._discarding or self.reset_status is not None:
            return False
        self._inbound.append(data)
        self._inbound_bytes += len(data)
        self._readable.set()
        if self._inbound_bytes >= _INBOUND_LIMIT and self.session.flow_control is FlowControl.ADVISORY:
            self._space.clear()
            await self._space.wait()  # holds the whole session, as spdystream's unbuffered channel does
        return True


class SpdySession:
    """One SPDY/3.1 connection. Run `serve()` as a task; take peer streams from `accept()`."""

    def __init__(
        self,
        transport: FrameTransport,
        *,
        server: bool = True,
        flow_control: FlowControl = FlowControl.ADVISORY,
        initial_receive_window: int = DEFAULT_WINDOW,
    ) -> None:
        if not 0 < initial_receive_window <= _MAX_WINDOW:
            raise ValueError(f"initial_receive_window must be in 1..{_MAX_WINDOW}, got {initial_receive_window}")
        self.transport = transport
        self.server = server
        self.flow_control = flow_control
        self.initial_receive_window = initial_receive_window
        self.initial_send_window = DEFAULT_WINDOW
        self.send_window = DEFAULT_WINDOW  # session level (stream 0)
        self.receive_window = DEFAULT_WINDOW
        self.closed = False
        self.goaway_received = False
        self._encoder = FrameEncoder()
        self._decoder = FrameDecoder()
        self._write_lock = asyncio.Lock()
        self._window_changed = asyncio.Condition()
        self._streams: dict[int, SpdyStream] = {}
        self._incoming: asyncio.Queue[SpdyStream | None] = asyncio.Queue()
        self._next_stream_id = 2 if server else 1
        self._last_peer_stream_id = 0
        self._next_ping_id = 2 if server else 1
        self._pings: dict[int, asyncio.Future[None]] = {}
        self._session_unacked = 0
        self._goaway_sent = False

    # -- public API ---------------------------------------------------------------------------------

    async def serve(self) -> None:
        """Read frames until the transport ends or the peer breaks the protocol; then end every stream."""
        try:
            if self.initial_receive_window != DEFAULT_WINDOW:
                setting = (SettingId.INITIAL_WINDOW_SIZE.value, self.initial_receive_window)
                await self.send(SettingsFrame((setting,)))
            while chunk := await self.transport.read():
                for frame in self._decoder.feed(chunk):
                    await self._handle(frame)
        except SpdyProtocolError as exc:
            log.info("spdy: peer broke the protocol: %s", exc)
            await self.goaway(GoAwayStatus.PROTOCOL_ERROR)
        except ConnectionError:
            log.debug("spdy: transport failed", exc_info=True)
        finally:
            await self._shutdown()

    async def accept(self) -> SpdyStream | None:
        """The next stream the peer opened, or None once the session ended."""
        if self.closed and self._incoming.empty():
            return None
        return await self._incoming.get()

    async def open_stream(
        self, headers: HeaderList | Mapping[str, str], *, fin: bool = False, wait_reply: bool = True
    ) -> SpdyStream:
        """SYN_STREAM a stream of our own; by default wait for the peer's SYN_REPLY (or its reset)."""
        pairs = _header_list(headers)
        async with self._write_lock:
            stream = SpdyStream(self, self._next_stream_id, pairs, self.initial_send_window)
            self._next_stream_id += 2
            self._streams[stream.id] = stream
            await self._write(SynStreamFrame(stream.id, pairs, fin=fin))
        if fin:
            stream._local_finished()
        if wait_reply:
            await stream.replied.wait()
            if stream.reset_status is not None or self.closed:
                raise SpdyStreamClosed(f"SPDY stream {stream.id} was refused (status {stream.reset_status})")
        return stream

    async def ping(self) -> None:
        """PING the peer and wait for its echo."""
        ping_id = self._next_ping_id
        self._next_ping_id += 2
        answer: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pings[ping_id] = answer
        try:
            await self.send(PingFrame(ping_id))
            await answer
        finally:
            self._pings.pop(ping_id, None)

    async def goaway(self, status: int = GoAwayStatus.OK) -> None:
        """Tell the peer no new streams are accepted (once)."""
        if self._goaway_sent or self.closed:
            return
        self._goaway_sent = True
        with contextlib.suppress(ConnectionError):
            await self.send(GoAwayFrame(self._last_peer_stream_id, status))

    async def close(self) -> None:
        """GOAWAY, close the transport, end every stream."""
        await self.goaway()
        with contextlib.suppress(ConnectionError, OSError):
            await self.transport.close()
        await self._shutdown()

    # -- used by streams ----------------------------------------------------------------------------

    async def send(self, frame: Frame) -> None:
        async with self._write_lock:
            await self._write(frame)

    async def reserve(self, stream: SpdyStream, wanted: int) -> int:
        """Take up to `wanted` bytes of send window (waiting for WINDOW_UPDATE when enforced)."""
        if self.flow_control is FlowControl.ENFORCED:
            async with self._window_changed:
                await self._window_changed.wait_for(
                    lambda: (
                        self.closed or stream.reset_status is not None or min(self.send_window, stream.send_window) > 0
                    )
                )
            stream._check_writable()
            wanted = min(wanted, self.send_window, stream.send_window)
        self.send_window -= wanted
        stream.send_window -= wanted
        return wanted

    async def consumed(self, stream: SpdyStream, size: int) -> None:
        """The handler read `size` bytes: give the windows back once half of one is used."""
        stream.receive_window += size
        self.receive_window += size
        stream._unacked += size
        self._session_unacked += size
        updates: list[Frame] = []
        if stream._unacked >= self.initial_receive_window // 2 and not stream.closed:
            updates.append(WindowUpdateFrame(stream.id, stream._unacked))
            stream._unacked = 0
        if self._session_unacked >= DEFAULT_WINDOW // 2:
            updates.append(WindowUpdateFrame(0, self._session_unacked))
            self._session_unacked = 0
        with contextlib.suppress(ConnectionError):
            for update in updates:
                await self.send(update)

    def forget_if_closed(self, stream: SpdyStream) -> None:
        if stream.closed:
            self._streams.pop(stream.id, None)

    # -- internals ----------------------------------------------------------------------------------

    async def _write(self, frame: Frame) -> None:
        if self.closed:
            raise SpdyStreamClosed("the SPDY session ended")
        await self.transport.write(self._encoder.encode(frame))  # encode order = send order (zlib context)

    def _is_peer_id(self, stream_id: int) -> bool:
        return stream_id % 2 == (1 if self.server else 0)

    async def _handle(self, frame: Frame) -> None:
        match frame:
            case SynStreamFrame():
                await self._on_syn_stream(frame)
            case DataFrame():
                await self._on_data(frame)
            case SynReplyFrame(stream_id, headers, fin):
                stream = self._streams.get(stream_id)
                if stream is None or stream.replied.is_set():
                    await self._refuse(stream_id, RstStatus.STREAM_IN_USE if stream else RstStatus.INVALID_STREAM)
                    return
                stream.reply_headers = _proxy(headers)
                stream.replied.set()
                if fin:
                    stream._remote_finished()
            case HeadersFrame(stream_id, headers, fin):
                stream = self._streams.get(stream_id)
                if stream is not None:
                    stream.reply_headers = _proxy((*stream.reply_headers.items(), *headers))
                    if fin:
                        stream._remote_finished()
            case RstStreamFrame(stream_id, status):
                if (stream := self._streams.get(stream_id)) is not None:
                    stream._mark_reset(status)
                    await self._notify_windows()
            case SettingsFrame(values):
                await self._on_settings(dict(values))
            case PingFrame(ping_id):
                if ping_id % 2 != self._next_ping_id % 2:
                    await self.send(frame)  # the peer's ping: echo it
                elif (waiter := self._pings.get(ping_id)) is not None and not waiter.done():
                    waiter.set_result(None)
            case GoAwayFrame():
                self.goaway_received = True
            case WindowUpdateFrame(stream_id, delta):
                await self._on_window_update(stream_id, delta)

    async def _on_syn_stream(self, frame: SynStreamFrame) -> None:
        sid = frame.stream_id
        if not self._is_peer_id(sid) or sid <= self._last_peer_stream_id:
            await self._refuse(sid, RstStatus.PROTOCOL_ERROR)
            return
        self._last_peer_stream_id = sid
        if self._goaway_sent:
            await self._refuse(sid, RstStatus.REFUSED_STREAM)
            return
        stream = SpdyStream(self, sid, frame.headers, self.initial_send_window)
        self._streams[sid] = stream
        if frame.unidirectional:
            stream.local_closed = True
        if frame.fin:
            stream._remote_finished()
        await self._incoming.put(stream)

    async def _on_data(self, frame: DataFrame) -> None:
        stream = self._streams.get(frame.stream_id)
        if stream is None or stream.remote_closed:
            if stream is not None or frame.stream_id > max(self._last_peer_stream_id, self._next_stream_id - 2):
                status = RstStatus.STREAM_ALREADY_CLOSED if stream else RstStatus.INVALID_STREAM
                await self._refuse(frame.stream_id, status)
            return  # data racing our own reset or close of a stream: dropped, as the spec allows
        size = len(frame.data)
        self.receive_window -= size
        stream.receive_window -= size
        if self.flow_control is FlowControl.ENFORCED:
            if self.receive_window < 0:
                raise SpdyProtocolError(f"peer overran the session window by {-self.receive_window} bytes")
            if stream.receive_window < 0:
                await stream.reset(RstStatus.FLOW_CONTROL_ERROR)
                return
        if size and not await stream._deliver(frame.data):
            await self.consumed(stream, size)
        if frame.fin:
            stream._remote_finished()

    async def _on_settings(self, values: dict[int, int]) -> None:
        window = values.get(SettingId.INITIAL_WINDOW_SIZE)
        if window is None:
            return
        delta = window - self.initial_send_window
        self.initial_send_window = window
        for stream in self._streams.values():
            stream.send_window += delta
        await self._notify_windows()

    async def _on_window_update(self, stream_id: int, delta: int) -> None:
        if stream_id == 0:
            self.send_window += delta
        elif (stream := self._streams.get(stream_id)) is not None:
            stream.send_window += delta
            if stream.send_window > _MAX_WINDOW:
                await stream.reset(RstStatus.FLOW_CONTROL_ERROR)
        await self._notify_windows()

    async def _notify_windows(self) -> None:
        async with self._window_changed:
            self._window_changed.notify_all()

    async def _refuse(self, stream_id: int, status: RstStatus) -> None:
        await self.send(RstStreamFrame(stream_id, status))

    async def _shutdown(self) -> None:
        if self.closed:
            return
        self.closed = True
        for stream in list(self._streams.values()):  # readers get what arrived, then b""; writers fail
            stream.remote_closed = stream.local_closed = True
            stream._readable.set()
            stream._space.set()
            stream.replied.set()
        self._streams.clear()
        for waiter in self._pings.values():
            if not waiter.done():
                waiter.set_exception(SpdyStreamClosed("the SPDY session ended before the ping's echo"))
        await self._incoming.put(None)
        await self._notify_windows()
        with contextlib.suppress(ConnectionError, OSError):
            await self.transport.close()
