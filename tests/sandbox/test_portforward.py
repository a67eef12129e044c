"""Port-forward and log streaming against the official kubernetes client, over real sockets.

The aiohttp app and the backing TCP servers run on an event loop in a background thread, so the
synchronous client (and websocket-client) can be driven from the test thread.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import queue
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
import websocket
from aiohttp import web
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import portforward

from meshbook.sandbox.node.logs import LogLine, serve_log
from meshbook.sandbox.node.portforward import (
    handle_portforward,
    parse_ports,
    pod_sandbox_id,
    portforward_error,
    refused_cause,
    serve_portforward,
)

TOKEN = "sandbox-token"
WAIT = 30.0  # generous bound on every blocking wait; the happy path never gets near it
T = TypeVar("T")


class FakeLog:
    """An in-memory container log implementing the LogSource protocol."""

    def __init__(self, lines: list[LogLine]) -> None:
        self.lines = list(lines)
        self.terminated = False
        self.changed = asyncio.Event()
        self.waits: queue.Queue[int] = queue.Queue()  # after_index of each wait_new call
        self.cancelled: queue.Queue[int] = queue.Queue()  # ... of each one abandoned by the server

    def snapshot(self) -> tuple[int, list[LogLine]]:
        return 0, list(self.lines)

    async def wait_new(self, after_index: int) -> list[LogLine] | None:
        self.waits.put(after_index)
        try:
            while len(self.lines) <= after_index and not self.terminated:
                self.changed.clear()
                await self.changed.wait()
        except asyncio.CancelledError:
            self.cancelled.put(after_index)
            raise
        return self.lines[after_index:] or None

    async def append(self, text: str) -> None:
        self.lines.append((datetime.now(UTC), text))
        self.changed.set()

    async def terminate(self) -> None:
        self.terminated = True
        self.changed.set()


class Sandbox:
    """The app under test on its own loop; `backends` maps pod ports to local TCP ports."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.backends: dict[int, int] = {}
        self.sessions: queue.Queue[str | None] = queue.Queue()  # subprotocol of each finished session
        self.backend_closed: queue.Queue[str] = queue.Queue()
        self.logs: dict[str, FakeLog] = {}
        self.base_url = self.run(self._start())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(WAIT)

    async def _start(self) -> str:
        app = web.Application(middlewares=[_bearer_only])
        pod = "/api/v1/namespaces/{ns}/pods/{name}"
        app.router.add_route("*", pod + "/portforward", self._portforward)
        app.router.add_get(pod + "/log", self._log)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.echo = await self._serve(lambda data: data, "echo")
        self.upper = await self._serve(bytes.upper, "upper")
        self.banner = await self._serve(bytes.upper, "banner", greeting=b"220 ready\r\n")
        port = self.runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    async def _serve(self, transform: Callable[[bytes], bytes], name: str, greeting: bytes = b"") -> int:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                writer.write(greeting)
                while data := await reader.read(65536):
                    writer.write(transform(data))
                    await writer.drain()
            finally:
                writer.close()
                self.backend_closed.put(name)

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        return int(server.sockets[0].getsockname()[1])

    async def _connect(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        if port not in self.backends:
            return None
        return await asyncio.open_connection("127.0.0.1", self.backends[port])

    async def _portforward(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("direct"):  # the lower-level call, with ports parsed by the route
            ws = await serve_portforward(request, parse_ports(request.query), self._connect)
        else:
            ws = await handle_portforward(request, self._connect)
        self.sessions.put(ws.ws_protocol)
        return ws

    async def _log(self, request: web.Request) -> web.StreamResponse:
        return await serve_log(request, self.logs[request.match_info["name"]])

    def close(self) -> None:
        self.run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)


@web.middleware
async def _bearer_only(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.headers.get("Authorization") != f"Bearer {TOKEN}":
        raise web.HTTPUnauthorized(text='{"kind":"Status","code":401}', content_type="application/json")
    return await handler(request)


@pytest.fixture(scope="module")
def server() -> Iterator[Sandbox]:
    box = Sandbox()
    yield box
    box.close()


@pytest.fixture
def sandbox(server: Sandbox) -> Sandbox:
    """The shared server with no backends and no sessions recorded yet."""
    server.backends.clear()
    server.sessions = queue.Queue()
    return server


@pytest.fixture
def api(sandbox: Sandbox) -> client.CoreV1Api:
    config = client.Configuration(host=sandbox.base_url)
    config.api_key = {"BearerToken": TOKEN}
    config.api_key_prefix = {"BearerToken": "Bearer"}
    return client.CoreV1Api(client.ApiClient(config))


def _recv_exactly(sock: Any, size: int) -> bytes:
    sock.settimeout(WAIT)
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data


@pytest.mark.parametrize(
    ("query", "ports"),
    [("ports=8200", [8200]), ("ports=8200,8201&ports=53", [8200, 8201, 53]), ("ports=1&ports=1", [1, 1])],
)
def test_parse_ports_accepts_repeats_and_comma_lists(query: str, ports: list[int]) -> None:
    assert parse_ports(query) == ports


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", 'query parameter "ports" is required'),
        ("ports=", 'query parameter "ports" cannot be empty'),
        ("ports=8200,", 'unable to parse "8200," as a port: "" is not a decimal number'),
        ("ports=%2B80", 'unable to parse "+80" as a port: "+80" is not a decimal number'),
        ("ports=0", 'unable to parse "0" as a port: 0 is not in 1-65535'),
        ("ports=65536", 'unable to parse "65536" as a port: 65536 is not in 1-65535'),
    ],
)
def test_parse_ports_rejects_with_precise_message(query: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_ports(query)
    assert str(info.value) == message


def test_bytes_round_trip_through_the_real_client(sandbox: Sandbox, api: client.CoreV1Api) -> None:
    sandbox.backends[8200] = sandbox.run(sandbox._serve(lambda data: data, "own echo"))
    pf = portforward(api.connect_get_namespaced_pod_portforward, "vault-0", "default", ports="8200")
    sock = pf.socket(8200)
    for message in (b"hello vault", b"x" * 200_000):
        sock.sendall(message)
        assert _recv_exactly(sock, len(message)) == message
    assert sandbox.sessions.empty() and pf.error(8200) is None  # still open, nothing went wrong
    sock.close()
    while sandbox.backend_closed.get(timeout=WAIT) != "own echo":  # the client left: pod side closes
        pass
    # v5 is offered first, but kubelets only speak v4 for port-forward
    assert sandbox.sessions.get(timeout=WAIT) == "v4.channel.k8s.io"
    pf.close()


def test_two_ports_at_once(sandbox: Sandbox, api: client.CoreV1Api) -> None:
    sandbox.backends.update({8200: sandbox.echo, 8201: sandbox.upper})
    pf = portforward(api.connect_get_namespaced_pod_portforward, "vault-0", "default", ports="8200,8201")
    echo, upper = pf.socket(8200), pf.socket(8201)
    upper.sendall(b"shout")
    echo.sendall(b"quiet")
    assert _recv_exactly(echo, 5) == b"quiet"
    assert _recv_exactly(upper, 5) == b"SHOUT"
    echo.close()
    upper.close()
    assert sandbox.sessions.get(timeout=WAIT) == "v4.channel.k8s.io"  # the server noticed and ended
    pf.close()


def test_pod_side_may_speak_first(sandbox: Sandbox, api: client.CoreV1Api) -> None:
    sandbox.backends[25] = sandbox.banner  # like SMTP: the client reads before it writes
    pf = portforward(api.connect_get_namespaced_pod_portforward, "mail-0", "default", ports="25")
    sock = pf.socket(25)
    assert _recv_exactly(sock, 11) == b"220 ready\r\n"
    sock.close()
    assert sandbox.sessions.get(timeout=WAIT) == "v4.channel.k8s.io"
    pf.close()


def test_refused_port_gets_the_kubelet_error_and_others_keep_working(sandbox: Sandbox, api: client.CoreV1Api) -> None:
    unused = socket.socket()
    unused.bind(("127.0.0.1", 0))  # bound, never listening: connecting is refused
    sandbox.backends.update({8200: sandbox.echo, 8300: unused.getsockname()[1]})
    try:
        pf = portforward(api.connect_get_namespaced_pod_portforward, "vault-0", "ns1", ports="8200,8300,9999")
        for port in (8300, 9999):
            assert pf.socket(port).recv(1) == b""  # the client closes a port's socket on an error
            error = pf.error(port)
            assert error.startswith(f"error forwarding port {port} to pod ")
            assert ', uid : failed to execute portforward in network namespace "/var/run/netns/cni-' in error
            assert (
                f"IPv4: dial tcp4 127.0.0.1:{port}: connect: connection refused "
                f"IPv6 dial tcp6 [::1]:{port}: connect: connection refused "
            ) in error
            sandbox_id = pod_sandbox_id("ns1", "vault-0")
            assert error == portforward_error(port, sandbox_id, refused_cause(port, sandbox_id))
        sock = pf.socket(8200)
        sock.sendall(b"still here")
        assert _recv_exactly(sock, 10) == b"still here"
        sock.close()
        assert sandbox.sessions.get(timeout=WAIT) == "v4.channel.k8s.io"
        pf.close()
    finally:
        unused.close()


def _ws_url(sandbox: Sandbox, query: str) -> str:
    """A port-forward URL for raw WebSocket clients."""
    return sandbox.base_url.replace("http", "ws", 1) + f"/api/v1/namespaces/default/pods/p/portforward?{query}"


def test_wire_format_binary_and_base64(sandbox: Sandbox) -> None:
    sandbox.backends.update({8200: sandbox.echo, 443: sandbox.upper})
    auth = [f"Authorization: Bearer {TOKEN}"]
    ws = websocket.create_connection(_ws_url(sandbox, "ports=8200&ports=443&direct=1"), header=auth, timeout=WAIT)
    preambles = [ws.recv() for _ in range(4)]
    assert preambles == [b"\x00\x08\x20", b"\x01\x08\x20", b"\x02\xbb\x01", b"\x03\xbb\x01"]
    ws.send_binary(b"\x02abc")
    assert ws.recv() == b"\x02ABC"
    ws.close()
    ws = websocket.create_connection(
        _ws_url(sandbox, "ports=8200"), header=auth, subprotocols=["v4.base64.channel.k8s.io"], timeout=WAIT
    )
    assert [ws.recv(), ws.recv()] == ["0CCA=", "1CCA="]  # '0'/'1' + base64 of 8200 little-endian
    ws.send("0" + base64.b64encode(b"ping").decode())
    assert ws.recv() == "0" + base64.b64encode(b"ping").decode()
    ws.close()
    assert [sandbox.sessions.get(timeout=WAIT) for _ in range(2)] == [None, "v4.base64.channel.k8s.io"]


def _status_of(sandbox: Sandbox, method: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """Send a raw request (urllib would force `Connection: close`); return code and Status body."""
    host, port = sandbox.base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=WAIT)
    try:
        conn.request(method, "/api/v1/namespaces/default/pods/p/portforward", headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_refusals_unsupported_subprotocol_spdy_and_missing_ports(sandbox: Sandbox) -> None:
    auth = [f"Authorization: Bearer {TOKEN}"]
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(_ws_url(sandbox, "ports=1"), header=auth, subprotocols=["v5.channel.k8s.io"])
    assert info.value.status_code == 403  # what the kubelet's x/net/websocket handshake answers
    ws_headers = {"Authorization": f"Bearer {TOKEN}", "Connection": "Upgrade", "Upgrade": "websocket"}
    ws_headers |= {"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": base64.b64encode(b"k" * 16).decode()}
    spdy_headers = {"Authorization": f"Bearer {TOKEN}", "Connection": "Upgrade", "Upgrade": "SPDY/3.1"}
    tunnel_headers = ws_headers | {"Sec-WebSocket-Protocol": "SPDY/3.1+portforward.k8s.io"}
    for method, headers in (("POST", spdy_headers), ("GET", tunnel_headers)):  # what kubectl sends
        code, status = _status_of(sandbox, method, headers)
        assert code == 400 and status["kind"] == "Status"
        assert "needs a WebSocket upgrade with subprotocol v4.channel.k8s.io" in status["message"]
    code, status = _status_of(sandbox, "GET", ws_headers)
    assert (code, status["message"]) == (400, 'query parameter "ports" is required')
    assert sandbox.sessions.empty()


def test_wrong_token_is_rejected_by_the_handshake(sandbox: Sandbox, api: client.CoreV1Api) -> None:
    api.api_client.configuration.api_key = {"BearerToken": "wrong"}
    with pytest.raises(ApiException) as info:
        portforward(api.connect_get_namespaced_pod_portforward, "vault-0", "default", ports="8200")
    assert "401" in str(info.value)


def _stamp(second: int) -> datetime:
    return datetime(2026, 1, 2, 3, 4, second, 678901, UTC)


def test_log_follow_streams_new_lines_until_the_container_ends(sandbox: Sandbox, api: client.CoreV1Api) -> None:
    log = sandbox.run(_make_log([(_stamp(1), "one"), (_stamp(2), "two")]))
    sandbox.logs["follow"] = log
    resp: Any = api.read_namespaced_pod_log(  # _preload_content=False: the raw urllib3 response
        "follow", "default", follow=True, _preload_content=False, _request_timeout=WAIT
    )
    chunks = resp.stream(amt=None)
    text = _read_until(chunks, "one\ntwo\n")
    assert log.waits.get(timeout=WAIT) == 2  # the server flushed the snapshot and waits for more
    sandbox.run(log.append("three"))
    text += _read_until(chunks, "three\n")
    sandbox.run(log.terminate())
    text += b"".join(chunks).decode()  # ends only because the container terminated
    assert text == "one\ntwo\nthree\n"
    assert resp.headers["Content-Type"] == "text/plain"


def test_log_follow_stops_waiting_when_the_client_leaves(sandbox: Sandbox, api: client.CoreV1Api) -> None:
    sandbox.logs["idle"] = log = sandbox.run(_make_log([(_stamp(1), "only")]))
    resp: Any = api.read_namespaced_pod_log("idle", "default", follow=True, _preload_content=False)
    assert log.waits.get(timeout=WAIT) == 1
    resp.close()  # drops the connection while the server waits for a line that never comes
    assert log.cancelled.get(timeout=WAIT) == 1


def test_log_tail_lines_timestamps_and_limit_bytes(sandbox: Sandbox, api: client.CoreV1Api) -> None:
    lines = [(_stamp(s), f"line {s}") for s in range(1, 6)]
    sandbox.logs["done"] = sandbox.run(_make_log(lines))
    assert api.read_namespaced_pod_log("done", "default", tail_lines=2) == "line 4\nline 5\n"
    stamped = api.read_namespaced_pod_log("done", "default", tail_lines=1, timestamps=True)
    assert stamped == "2026-01-02T03:04:05.678901000Z line 5\n"
    assert api.read_namespaced_pod_log("done", "default", tail_lines=0) == ""
    assert api.read_namespaced_pod_log("done", "default", limit_bytes=9) == "line 1\nli"
    with pytest.raises(ApiException) as info:
        api.read_namespaced_pod_log("done", "default", tail_lines=-1)
    assert info.value.status == 422
    assert json.loads(info.value.body or "null")["message"] == (
        'PodLogOptions "done" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0'
    )


async def _make_log(lines: list[LogLine]) -> FakeLog:
    return FakeLog(lines)  # built on the server loop, where its asyncio.Event lives


def _read_until(chunks: Iterator[bytes], expected: str) -> str:
    text = ""
    while len(text) < len(expected):
        text += next(chunks).decode()
    assert text == expected
    return text
