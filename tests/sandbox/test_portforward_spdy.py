"""`pods/portforward` over SPDY (`node/portforward_spdy.py`, `node/spdy_http.py`), driven by a SPDY client.

The route's handler runs in an aiohttp app on the test's own event loop, with TCP backends standing
in for pod ports; the client is `SpdySession(server=False)` over a raw HTTP/1.1 upgrade (kubectl 1.30
and earlier) or over WebSocket binary messages (kubectl 1.31+). kubectl itself is exercised against
real sandboxes in test_kubectl_portforward.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from meshbook.sandbox.node import portforward_spdy
from meshbook.sandbox.node.portforward import pod_sandbox_id, portforward_error, refused_cause
from meshbook.sandbox.node.portforward_spdy import handle_portforward_request
from meshbook.sandbox.node.spdy import SpdySession, SpdyStream, SpdyStreamClosed
from meshbook.sandbox.node.spdy_frames import RstStatus
from tests.sandbox.test_spdy import read_exactly

WAIT = 30.0
PATH = "/api/v1/namespaces/ns1/pods/vault-0/portforward"
SANDBOX_ID = pod_sandbox_id("ns1", "vault-0")
TRANSPORTS = ["upgrade", "tunnel"]


def run(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), WAIT))

    return wrapper


class StreamTransport:
    """A SPDY client's transport over an upgraded TCP connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def read(self) -> bytes:
        return await self.reader.read(65536)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


class WebSocketTransport:
    """A SPDY client's transport in WebSocket binary messages, like client-go's TunnelingConnection."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def read(self) -> bytes:
        msg = await self.ws.receive()
        return bytes(msg.data) if msg.type is aiohttp.WSMsgType.BINARY else b""

    async def write(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def close(self) -> None:
        await self.ws.close()


class Harness:
    """The route on a local port, pod ports backed by local TCP servers, and what happened to them."""

    def __init__(self) -> None:
        self.backends: dict[int, int] = {}
        self.backend_closed: asyncio.Queue[str] = asyncio.Queue()
        self.handled: asyncio.Queue[int] = asyncio.Queue()  # status of each finished request
        self.dialled: list[int] = []
        self.http: aiohttp.ClientSession | None = None
        self.client_tasks: list[asyncio.Task[None]] = []
        self.servers: list[asyncio.Server] = []

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", PATH, self._portforward)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        self.http = aiohttp.ClientSession()

    async def stop(self) -> None:
        assert self.http is not None
        await self.http.close()
        await self.runner.cleanup()
        for server in self.servers:
            server.close()
            await server.wait_closed()

    async def serve(
        self, name: str, transform: Callable[[bytes], bytes], greeting: bytes = b"", *, once: bool = False
    ) -> int:
        """A pod port; `once`: answer the first chunk, then close."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                writer.write(greeting)
                while data := await reader.read(65536):
                    writer.write(transform(data))
                    await writer.drain()
                    if once:
                        break
            except ConnectionError:
                pass
            finally:
                writer.close()
                await self.backend_closed.put(name)

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def _connect(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        self.dialled.append(port)
        if port not in self.backends:
            return None
        return await asyncio.open_connection("127.0.0.1", self.backends[port])

    async def _portforward(self, request: web.Request) -> web.StreamResponse:
        try:
            response = await handle_portforward_request(request, self._connect)
        except web.HTTPException as exc:
            await self.handled.put(exc.status)
            raise
        await self.handled.put(response.status)
        return response

    async def raw_upgrade(self, *headers: str) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
        """Send kubectl 1.28's request with `headers`; the response head and the connection."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = [f"POST {PATH} HTTP/1.1", "Host: sandbox", "Content-Length: 0", *headers, "", ""]
        writer.write("\r\n".join(head).encode())
        return await reader.readuntil(b"\r\n\r\n"), reader, writer

    async def client(self, transport: str) -> SpdySession:
        """A SPDY client session (serving) over `transport`, as kubectl would open it."""
        if transport == "upgrade":
            head, reader, writer = await self.raw_upgrade(
                "Connection: Upgrade", "Upgrade: SPDY/3.1", "X-Stream-Protocol-Version: portforward.k8s.io"
            )
            assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), head
            assert b"\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n" in head
            assert b"\r\nUpgrade: SPDY/3.1\r\n" in head
            session = SpdySession(StreamTransport(reader, writer), server=False)
        else:
            assert self.http is not None
            url = f"http://127.0.0.1:{self.port}{PATH}"
            ws = await self.http.ws_connect(url, protocols=("SPDY/3.1+portforward.k8s.io",), autoclose=False)
            assert ws.protocol == "SPDY/3.1+portforward.k8s.io"
            session = SpdySession(WebSocketTransport(ws), server=False)
        self.client_tasks.append(asyncio.create_task(session.serve()))
        return session


@contextlib.asynccontextmanager
async def harness() -> AsyncIterator[Harness]:
    box = Harness()
    await box.start()
    try:
        yield box
    finally:
        await box.stop()


async def _open_pair(session: SpdySession, port: int, request_id: str | None) -> tuple[SpdyStream, SpdyStream]:
    """kubectl's order: the error stream (which it half-closes at once), then the data stream."""
    headers = {"streamType": "error", "port": str(port)}
    if request_id is not None:
        headers["requestID"] = request_id
    error = await session.open_stream(headers)
    await error.close()
    data = await session.open_stream({**headers, "streamType": "data"})
    return error, data


async def _body(head: bytes, reader: asyncio.StreamReader) -> bytes:
    """A response body by its Content-Length (the connection stays open: HTTP/1.1 keep-alive)."""
    length = next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    return await reader.readexactly(int(length.split(b":")[1]))


async def _read_all(stream: SpdyStream) -> bytes:
    out = b""
    while chunk := await stream.read():
        out += chunk
    return out


# -- refusals first ----------------------------------------------------------------------------------


@run
async def test_upgrade_without_or_with_unknown_stream_protocol_is_refused() -> None:
    async with harness() as box:
        head, reader, writer = await box.raw_upgrade("Connection: Upgrade", "Upgrade: SPDY/3.1")
        body = await _body(head, reader)
        writer.close()
        assert head.startswith(b"HTTP/1.1 400 ")
        assert body == b"unable to upgrade: X-Stream-Protocol-Version is required\n"
        head, reader, writer = await box.raw_upgrade(
            "Connection: Upgrade", "Upgrade: SPDY/3.1", "X-Stream-Protocol-Version: v4.channel.k8s.io"
        )
        body = await _body(head, reader)
        writer.close()
        assert head.startswith(b"HTTP/1.1 403 ")
        assert b"\r\nX-Accepted-Stream-Protocol-Versions: portforward.k8s.io\r\n" in head
        assert body == (
            b"unable to upgrade: unable to negotiate protocol: "
            b"client supports [v4.channel.k8s.io], server accepts [portforward.k8s.io]\n"
        )
        assert box.http is not None
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await box.http.ws_connect(f"http://127.0.0.1:{box.port}{PATH}", protocols=("SPDY/3.1+remotecommand",))
        assert info.value.status == 403
        assert [box.handled.get_nowait() for _ in range(3)] == [400, 403, 403]


@pytest.mark.parametrize("transport", TRANSPORTS)
@run
async def test_streams_with_bad_headers_are_reset_as_the_kubelet_does(transport: str) -> None:
    async with harness() as box:
        session = await box.client(transport)
        for headers in (
            {"streamType": "data"},  # no port
            {"streamType": "data", "port": "http"},
            {"streamType": "data", "port": "0"},
            {"streamType": "data", "port": "70000"},
            {"port": "8200"},
            {"streamType": "stdin", "port": "8200"},
        ):
            with pytest.raises(SpdyStreamClosed, match=f"refused \\(status {RstStatus.CANCEL}\\)"):
                await session.open_stream(headers)
        assert box.dialled == []
        await session.close()
        assert await box.handled.get() == 101


@pytest.mark.parametrize("transport", TRANSPORTS)
@run
async def test_a_port_nothing_listens_on_gets_the_kubelets_error_text(transport: str) -> None:
    async with harness() as box:
        session = await box.client(transport)
        error, data = await _open_pair(session, 8201, "0")
        message = (await _read_all(error)).decode()
        assert message == portforward_error(8201, SANDBOX_ID, refused_cause(8201, SANDBOX_ID))
        assert message.startswith(f"error forwarding port 8201 to pod {SANDBOX_ID}, uid : ")
        assert "dial tcp4 127.0.0.1:8201: connect: connection refused" in message
        assert await _read_all(data) == b""  # the data stream is half-closed with no bytes
        await session.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
@run
async def test_a_second_data_stream_for_one_request_is_an_error_on_its_error_stream(transport: str) -> None:
    async with harness() as box:
        box.backends[8200] = await box.serve("echo", lambda b: b)
        session = await box.client(transport)
        error = await session.open_stream({"streamType": "error", "port": "8200", "requestID": "7"})
        twice = await session.open_stream({"streamType": "error", "port": "8200", "requestID": "7"})
        assert twice.id == 3
        text = await error.read()
        assert text == b"error processing stream for request 7: error stream already assigned"
        await session.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_pair_never_completed_times_out_on_its_error_stream(transport: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(portforward_spdy, "STREAM_CREATION_TIMEOUT", 0.1)  # the kubelet's is 30 s

    @run
    async def scenario() -> None:
        async with harness() as box:
            session = await box.client(transport)
            error = await session.open_stream({"streamType": "error", "port": "8200", "requestID": "3"})
            assert await _read_all(error) == b"(conn=sandbox, request=3) timed out waiting for streams"
            assert box.dialled == []
            await session.close()

    scenario()


# -- forwarding ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
@run
async def test_bytes_both_ways_beyond_every_window(transport: str) -> None:
    async with harness() as box:
        box.backends[8200] = await box.serve("echo", lambda b: b)
        session = await box.client(transport)
        error, data = await _open_pair(session, 8200, "0")
        payload = bytes(range(256)) * 1200  # 300 KiB: several 64 KiB windows, which spdystream ignores
        writing = asyncio.create_task(data.write(payload))
        assert await read_exactly(data, len(payload)) == payload
        await writing
        await data.close()  # kubectl's local connection ended; the pod side is dropped a second later
        assert await _read_all(data) == b""
        assert await _read_all(error) == b""  # no error
        assert await box.backend_closed.get() == "echo"
        await session.close()
        assert await box.handled.get() == 101


@pytest.mark.parametrize("transport", TRANSPORTS)
@run
async def test_concurrent_connections_and_a_pod_that_speaks_first(transport: str) -> None:
    async with harness() as box:
        box.backends[8200] = await box.serve("upper", bytes.upper)
        box.backends[25] = await box.serve("banner", bytes.upper, greeting=b"220 ready\r\n")
        session = await box.client(transport)
        pairs = [await _open_pair(session, 8200, str(i)) for i in range(5)]
        _, banner = await _open_pair(session, 25, "5")
        assert await read_exactly(banner, 11) == b"220 ready\r\n"
        for i, (_, data) in enumerate(reversed(pairs)):
            await data.write(f"conn {i}".encode())
        for i, (_, data) in enumerate(reversed(pairs)):
            assert await read_exactly(data, 6) == f"CONN {i}".encode()
        assert sorted(box.dialled) == [25, *[8200] * 5]
        await session.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
@run
async def test_streams_without_request_id_are_paired_by_stream_id(transport: str) -> None:
    async with harness() as box:
        box.backends[8200] = await box.serve("echo", lambda b: b)
        session = await box.client(transport)
        _, data = await _open_pair(session, 8200, None)  # ids 1 (error) and 3 (data): request "1"
        await data.write(b"old client")
        assert await read_exactly(data, 10) == b"old client"
        await session.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
@run
async def test_the_client_leaving_closes_every_pod_connection_and_ends_the_request(transport: str) -> None:
    async with harness() as box:
        box.backends[8200] = await box.serve("echo", lambda b: b)
        session = await box.client(transport)
        streams = [await _open_pair(session, 8200, str(i)) for i in range(3)]
        for _, data in streams:
            await data.write(b"x")
            assert await read_exactly(data, 1) == b"x"
        await session.transport.close()  # kubectl killed: the connection just goes away
        assert [await box.backend_closed.get() for _ in range(3)] == ["echo"] * 3
        assert await box.handled.get() == 101
        await box.client_tasks[-1]


@run
async def test_the_pod_closing_first_ends_the_data_stream_without_an_error() -> None:
    async with harness() as box:
        box.backends[8200] = await box.serve("one-shot", lambda b: b, once=True)
        session = await box.client("upgrade")
        error, data = await _open_pair(session, 8200, "0")
        await data.write(b"bye")
        assert await _read_all(data) == b"bye"  # then FIN, though the client never half-closed
        assert await _read_all(error) == b""
        await session.close()
