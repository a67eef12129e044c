"""SPDY/3.1 framing and sessions (`node/spdy_frames.py`, `node/spdy.py`), over an in-memory transport.

Everything runs on one event loop with no I/O, so `_settle()` (yielding until nothing is runnable)
is deterministic: a write that is still pending after it is blocked, not slow.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from meshbook.sandbox.node.spdy import DEFAULT_WINDOW, FlowControl, SpdySession, SpdyStream, SpdyStreamClosed
from meshbook.sandbox.node.spdy_frames import (
    HEADER_DICTIONARY,
    DataFrame,
    Frame,
    FrameDecoder,
    FrameEncoder,
    GoAwayFrame,
    GoAwayStatus,
    HeadersFrame,
    PingFrame,
    RstStatus,
    RstStreamFrame,
    SettingsFrame,
    SpdyProtocolError,
    SynReplyFrame,
    SynStreamFrame,
    WindowUpdateFrame,
)

WAIT = 30.0


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    def wrapper() -> None:
        asyncio.run(asyncio.wait_for(test(), WAIT))

    wrapper.__name__ = test.__name__
    return wrapper


async def _settle() -> None:
    """Let every runnable task run (in-memory pipes only: no real I/O is awaited)."""
    for _ in range(200):
        await asyncio.sleep(0)


class Pipe:
    """One end of an in-memory byte pipe; records what it wrote."""

    def __init__(self, inbound: asyncio.Queue[bytes], outbound: asyncio.Queue[bytes]) -> None:
        self.inbound, self.outbound = inbound, outbound
        self.written = bytearray()
        self.closed = False

    async def read(self) -> bytes:
        return await self.inbound.get()

    async def write(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionResetError("pipe closed")
        self.written += data
        await self.outbound.put(data)

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self.outbound.put(b"")
            await self.inbound.put(b"")


def _pipes() -> tuple[Pipe, Pipe]:
    a: asyncio.Queue[bytes] = asyncio.Queue()
    b: asyncio.Queue[bytes] = asyncio.Queue()
    return Pipe(a, b), Pipe(b, a)


class Pair:
    """A client and a server session joined by pipes, both serving."""

    def __init__(self, **server_options: Any) -> None:
        self.client_pipe, self.server_pipe = _pipes()
        self.server = SpdySession(self.server_pipe, server=True, **server_options)
        self.client = SpdySession(self.client_pipe, server=False)
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, **client_options: Any) -> Pair:
        self.client = SpdySession(self.client_pipe, server=False, **client_options)
        self.tasks = [asyncio.create_task(self.server.serve()), asyncio.create_task(self.client.serve())]
        return self

    async def stop(self) -> None:
        await self.client.close()
        await self.server.close()
        await asyncio.gather(*self.tasks)

    async def open(self, headers: dict[str, str]) -> tuple[SpdyStream, SpdyStream]:
        """Client opens a stream; the server accepts and replies."""
        opening = asyncio.create_task(self.client.open_stream(headers))
        accepted = await self.server.accept()
        assert accepted is not None
        await accepted.reply()
        return await opening, accepted


def _frames(data: bytes, decoder: FrameDecoder | None = None) -> list[Frame]:
    return list((decoder or FrameDecoder()).feed(data))


# -- wire format: errors first -----------------------------------------------------------------------


def test_control_frame_of_another_version_is_a_protocol_error() -> None:
    spdy2_ping = struct.pack(">HHII", 0x8002, 6, 4, 1)
    with pytest.raises(SpdyProtocolError, match="SPDY version 2"):
        _frames(spdy2_ping)


@pytest.mark.parametrize(("kind", "length"), [(3, 4), (6, 8), (7, 4), (9, 12), (1, 6)])
def test_control_frames_of_the_wrong_length_are_refused(kind: int, length: int) -> None:
    with pytest.raises(SpdyProtocolError, match=f"payload of {length} bytes"):
        _frames(struct.pack(">HHI", 0x8003, kind, length) + b"\0" * length)


def test_header_blocks_that_lie_are_refused() -> None:
    encoder = FrameEncoder()
    bad_zlib = struct.pack(">HHI", 0x8003, 2, 4 + 5) + struct.pack(">I", 1) + b"nope!"
    with pytest.raises(SpdyProtocolError, match="does not decompress"):
        _frames(bad_zlib)
    compressor = zlib.compressobj(zdict=HEADER_DICTIONARY)
    for block, message in (
        (struct.pack(">I", 2) + struct.pack(">I", 1) + b"a" + struct.pack(">I", 0), "truncated"),
        (struct.pack(">I", 2) + (struct.pack(">I", 1) + b"a" + struct.pack(">I", 0)) * 2, "duplicate header name"),
        (struct.pack(">II", 1, 4_000_000) + b"x" * 4_000_000, "over 262144 bytes"),
    ):
        compressor = zlib.compressobj(zdict=HEADER_DICTIONARY)
        packed = compressor.compress(block) + compressor.flush(zlib.Z_SYNC_FLUSH)
        frame = struct.pack(">HHI", 0x8003, 2, 4 + len(packed)) + struct.pack(">I", 1) + packed
        with pytest.raises(SpdyProtocolError, match=message):
            _frames(frame)
    assert encoder.encode(PingFrame(1))  # an encoder is unaffected by a peer's bad blocks


def test_unknown_control_types_are_skipped() -> None:
    credential = struct.pack(">HHI", 0x8003, 10, 3) + b"abc"  # CREDENTIAL (type 10), no longer used
    assert _frames(credential + FrameEncoder().encode(PingFrame(7))) == [PingFrame(7)]


# -- wire format: what is right ----------------------------------------------------------------------


def test_the_header_dictionary_is_spdy3s() -> None:
    assert len(HEADER_DICTIONARY) == 1423
    assert zlib.adler32(HEADER_DICTIONARY) == 0xE3C6A7C2
    assert HEADER_DICTIONARY.startswith(b"\0\0\0\x07options\0\0\0\x04head")
    assert HEADER_DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")
    frame = FrameEncoder().encode(SynReplyFrame(1, (("a", "b"),)))
    zlib_header = frame[12:18]  # control header 8 + stream id 4, then zlib: CMF FLG DICTID
    assert zlib_header[1] & 0x20 and zlib_header[2:] == (0xE3C6A7C2).to_bytes(4, "big")


def test_exact_bytes_of_fixed_frames() -> None:
    encoder = FrameEncoder()
    assert encoder.encode(PingFrame(1)) == bytes.fromhex("80030006 00000004 00000001")
    assert encoder.encode(DataFrame(5, b"abc", fin=True)) == bytes.fromhex("00000005 01000003 616263")
    assert encoder.encode(RstStreamFrame(3, RstStatus.CANCEL)) == bytes.fromhex("80030003 00000008 00000003 00000005")
    assert encoder.encode(WindowUpdateFrame(0, 1000)) == bytes.fromhex("80030009 00000008 00000000 000003e8")
    assert encoder.encode(GoAwayFrame(7, GoAwayStatus.OK)) == bytes.fromhex("80030007 00000008 00000007 00000000")
    assert encoder.encode(SettingsFrame(((7, 1024),), clear=True)) == bytes.fromhex(
        "80030004 0100000c 00000001 00000007 00000400"
    )


def test_every_frame_round_trips_even_fed_byte_by_byte() -> None:
    frames: list[Frame] = [
        SynStreamFrame(1, (("streamtype", "error"), ("port", "8200"), ("requestid", "0")), priority=3),
        SynStreamFrame(3, (("streamtype", "data"),), associated_to=1, fin=True, unidirectional=True),
        SynReplyFrame(1, ()),
        SynReplyFrame(3, (("x", "1"),), fin=True),
        HeadersFrame(3, (("set-cookie", "a"), ("set-cookie", "b")), fin=True),
        DataFrame(1, b"\x00" * 70_000),
        DataFrame(3, b"", fin=True),
        RstStreamFrame(1, RstStatus.FLOW_CONTROL_ERROR),
        SettingsFrame(((4, 100), (7, 65536))),
        PingFrame(2),
        GoAwayFrame(9, GoAwayStatus.PROTOCOL_ERROR),
        WindowUpdateFrame(3, 2**31 - 1),
    ]
    encoder = FrameEncoder()
    wire = b"".join(encoder.encode(f) for f in frames)
    assert _frames(wire) == frames
    decoder, one_by_one = FrameDecoder(), []
    for i in range(len(wire)):
        one_by_one += decoder.feed(wire[i : i + 1])
    assert one_by_one == frames


def test_header_names_are_sent_lower_case_and_repeated_names_as_one_nul_joined_value() -> None:
    encoder = FrameEncoder()
    wire = encoder.encode(SynReplyFrame(1, (("StreamType", "data"), ("Port", "1"), ("port", "2"))))
    raw = zlib.decompressobj(zdict=HEADER_DICTIONARY).decompress(wire[12:])
    assert raw == struct.pack(">I", 2) + b"".join(
        struct.pack(">I", len(part)) + part for part in (b"streamtype", b"data", b"port", b"1\x002")
    )
    assert _frames(wire) == [SynReplyFrame(1, (("streamtype", "data"), ("port", "1"), ("port", "2")))]


def test_header_blocks_share_one_compression_context_per_direction() -> None:
    encoder = FrameEncoder()
    headers = (("streamtype", "data"), ("port", "8200"), ("requestid", "17"))
    first = encoder.encode(SynStreamFrame(1, headers))
    second = encoder.encode(SynStreamFrame(3, headers))
    assert len(second) < len(first) - 10  # the second block refers back into the first
    decoder = FrameDecoder()
    assert [f.headers for f in decoder.feed(first + second) if isinstance(f, SynStreamFrame)] == [headers, headers]
    with pytest.raises(SpdyProtocolError):  # without the first block's context the second is garbage
        _frames(second)


# -- sessions ------------------------------------------------------------------------------------------


@run
async def test_streams_from_the_wrong_side_or_out_of_order_are_reset() -> None:
    encoder = FrameEncoder()  # a raw client: frames written straight into the server's pipe
    raw, _ = _pipes()
    server = SpdySession(raw, server=True)
    serving = asyncio.create_task(server.serve())
    for frame in (SynStreamFrame(2, ()), SynStreamFrame(5, ()), SynStreamFrame(3, ())):
        await raw.inbound.put(encoder.encode(frame))
    await _settle()
    accepted = await server.accept()
    assert accepted is not None and accepted.id == 5
    assert _frames(bytes(raw.written)) == [
        RstStreamFrame(2, RstStatus.PROTOCOL_ERROR),  # even ids are the server's
        RstStreamFrame(3, RstStatus.PROTOCOL_ERROR),  # ids only grow
    ]
    await raw.inbound.put(encoder.encode(DataFrame(99, b"x")))  # never opened
    await raw.inbound.put(b"")
    await serving
    assert _frames(bytes(raw.written))[-1] == RstStreamFrame(99, RstStatus.INVALID_STREAM)
    assert await server.accept() is None


@run
async def test_a_broken_frame_ends_the_session_with_goaway_protocol_error() -> None:
    raw, _ = _pipes()
    server = SpdySession(raw, server=True)
    serving = asyncio.create_task(server.serve())
    await raw.inbound.put(struct.pack(">HHII", 0x8002, 6, 4, 1))
    await serving
    assert _frames(bytes(raw.written)) == [GoAwayFrame(0, GoAwayStatus.PROTOCOL_ERROR)]
    assert server.closed and raw.closed


@run
async def test_streams_headers_data_and_half_close() -> None:
    pair = Pair().start()
    client_stream, server_stream = await pair.open({"streamType": "data", "port": "8200", "requestID": "0"})
    assert server_stream.headers["streamtype"] == server_stream.headers["StreamType"] == "data"
    assert (server_stream.id, client_stream.id) == (1, 1)
    await client_stream.write(b"hello")
    assert await server_stream.read() == b"hello"
    await client_stream.close()  # FIN from the client: the server reads EOF but may still write
    assert await server_stream.read() == b""
    await server_stream.write(b"world")
    assert await client_stream.read() == b"world"
    with pytest.raises(SpdyStreamClosed, match="half-closed"):
        await client_stream.write(b"late")
    await server_stream.close()
    assert await client_stream.read() == b""
    assert client_stream.closed and server_stream.closed
    await pair.stop()


@run
async def test_reset_ends_a_stream_both_ways_and_a_reply_can_carry_fin() -> None:
    pair = Pair().start()
    client_stream, server_stream = await pair.open({"streamType": "error"})
    await server_stream.reset(RstStatus.REFUSED_STREAM)
    assert await client_stream.read() == b""
    assert client_stream.reset_status == RstStatus.REFUSED_STREAM
    with pytest.raises(SpdyStreamClosed, match="reset"):
        await client_stream.write(b"x")
    opening = asyncio.create_task(pair.client.open_stream({"n": "2"}))
    accepted = await pair.server.accept()
    assert accepted is not None
    await accepted.reply({"ok": "yes"}, fin=True)
    stream = await opening
    assert stream.reply_headers["ok"] == "yes" and await stream.read() == b""
    await pair.stop()


@run
async def test_headers_frames_add_to_a_streams_headers_or_its_reply() -> None:
    pair = Pair().start()
    client_stream, server_stream = await pair.open({"streamType": "data"})
    await pair.client.send(HeadersFrame(client_stream.id, (("late", "1"),)))
    await pair.server.send(HeadersFrame(server_stream.id, (("trailer", "2"),), fin=True))
    assert await client_stream.read() == b""  # the HEADERS frame's FIN
    assert client_stream.reply_headers["trailer"] == "2"
    await pair.client.ping()  # the server has read everything the client sent before
    assert server_stream.headers["late"] == "1" and server_stream.headers["streamType"] == "data"
    await pair.stop()


@run
async def test_pings_are_echoed_both_ways_and_goaway_refuses_new_streams() -> None:
    pair = Pair().start()
    await pair.client.ping()
    await pair.server.ping()
    await pair.server.goaway()
    with pytest.raises(SpdyStreamClosed, match="refused"):
        await pair.client.open_stream({"late": "1"})
    assert pair.client.goaway_received
    await pair.stop()


@run
async def test_ending_the_transport_ends_every_stream_and_accept() -> None:
    pair = Pair().start()
    client_stream, server_stream = await pair.open({"a": "1"})
    await client_stream.write(b"last words")
    await pair.client_pipe.close()
    await asyncio.gather(*pair.tasks)
    assert await server_stream.read() == b"last words"  # what arrived is still read, then EOF
    assert await server_stream.read() == b""
    assert await pair.server.accept() is None
    with pytest.raises(SpdyStreamClosed):
        await server_stream.write(b"x")


# -- flow control -------------------------------------------------------------------------------------


async def _write_in_background(stream: SpdyStream, data: bytes) -> asyncio.Task[None]:
    task = asyncio.create_task(stream.write(data))
    await _settle()
    return task


async def read_exactly(stream: SpdyStream, size: int) -> bytes:
    """`size` bytes of a stream; its end before them fails the test."""
    data = b""
    while len(data) < size:
        chunk = await stream.read()
        assert chunk, f"stream {stream.id} ended after {len(data)} of {size} bytes"
        data += chunk
    return data


@run
async def test_enforced_stream_window_holds_the_writer_until_the_reader_reads() -> None:
    pair = Pair(flow_control=FlowControl.ENFORCED).start()
    client_stream, server_stream = await pair.open({"a": "1"})
    payload = bytes(range(256)) * 800  # 200 KiB, three windows
    writing = await _write_in_background(server_stream, payload)
    assert not writing.done() and server_stream.send_window == 0
    sent = sum(len(f.data) for f in _frames(bytes(pair.server_pipe.written)) if isinstance(f, DataFrame))
    assert sent == DEFAULT_WINDOW  # exactly one window, then nothing until WINDOW_UPDATE
    assert await read_exactly(client_stream, len(payload)) == payload  # reading sends WINDOW_UPDATEs
    await writing
    updates = [f for f in _frames(bytes(pair.client_pipe.written)) if isinstance(f, WindowUpdateFrame)]
    assert {u.stream_id for u in updates} == {0, 1}  # stream and session windows (SPDY/3.1)
    await pair.stop()


@run
async def test_enforced_session_window_is_shared_by_all_streams() -> None:
    pair = Pair(flow_control=FlowControl.ENFORCED).start()
    first, first_server = await pair.open({"n": "1"})
    second, second_server = await pair.open({"n": "2"})
    one = await _write_in_background(first_server, b"a" * 40_000)
    two = await _write_in_background(second_server, b"b" * 40_000)
    assert one.done() and not two.done()  # 40 000 + 25 536 = the session's 64 KiB
    assert pair.server.send_window == 0 and second_server.send_window == DEFAULT_WINDOW - 25_536
    assert await read_exactly(first, 40_000) == b"a" * 40_000  # session window given back
    await two
    assert await read_exactly(second, 40_000) == b"b" * 40_000
    await pair.stop()


@run
async def test_settings_initial_window_size_shrinks_the_peers_stream_windows() -> None:
    pair = Pair(flow_control=FlowControl.ENFORCED).start(initial_receive_window=1000)
    client_stream, server_stream = await pair.open({"a": "1"})
    writing = await _write_in_background(server_stream, b"z" * 5000)
    assert not writing.done() and server_stream.send_window == 0
    sent = sum(len(f.data) for f in _frames(bytes(pair.server_pipe.written)) if isinstance(f, DataFrame))
    assert sent == 1000
    assert await read_exactly(client_stream, 5000) == b"z" * 5000
    await writing
    await pair.stop()


@run
async def test_enforced_receiver_resets_a_stream_that_overruns_its_window() -> None:
    raw, _ = _pipes()
    server = SpdySession(raw, server=True, flow_control=FlowControl.ENFORCED, initial_receive_window=10)
    serving = asyncio.create_task(server.serve())
    encoder = FrameEncoder()
    await raw.inbound.put(encoder.encode(SynStreamFrame(1, ())) + encoder.encode(DataFrame(1, b"x" * 11)))
    stream = await server.accept()
    assert stream is not None
    await _settle()
    assert stream.reset_status == RstStatus.FLOW_CONTROL_ERROR
    assert RstStreamFrame(1, RstStatus.FLOW_CONTROL_ERROR) in _frames(bytes(raw.written))
    await raw.inbound.put(b"")
    await serving


@run
async def test_advisory_windows_never_hold_a_writer_as_spdystream_peers_send_no_window_update() -> None:
    pair = Pair().start()  # FlowControl.ADVISORY, the default
    client_stream, server_stream = await pair.open({"a": "1"})
    await server_stream.write(b"q" * 200_000)  # completes although nobody has read yet
    assert server_stream.send_window == DEFAULT_WINDOW - 200_000
    assert await read_exactly(client_stream, 200_000) == b"q" * 200_000
    await pair.stop()


@run
async def test_discarded_input_is_dropped_and_counts_as_read() -> None:
    pair = Pair().start()
    client_stream, server_stream = await pair.open({"a": "1"})
    server_stream.discard_input()
    await client_stream.write(b"d" * 300_000)  # more than the inbound limit: the session must not stall
    await client_stream.close()
    assert await server_stream.read() == b""
    await pair.client.ping()  # the session still answers
    await pair.stop()
