"""`pods/{name}/portforward` over WebSocket, as a kubelet behind the API server speaks it.

Wire format (kubelet `portforward/websocket.go` on top of apiserver `wsstream`), which the official
Python client's `kubernetes.stream.portforward` expects:

* subprotocols: the kubelet accepts `v4.channel.k8s.io` (binary frames), `v4.base64.channel.k8s.io`
  (text frames, ASCII channel digit + base64) and no subprotocol at all (binary). The first offered
  one it knows wins; `v5.channel.k8s.io` is *not* accepted for port-forward, so the Python client
  (which offers `v5.channel.k8s.io,v4.channel.k8s.io`) gets v4. Nothing acceptable: 403, empty body.
* the i-th requested port owns channel 2*i (data, both ways) and 2*i+1 (errors, server to client);
  every message starts with its channel byte.
* the server's first message on each of the two channels is the port as 2-byte little-endian.
* one backing connection per port per WebSocket, dialled as soon as the socket opens (the kubelet
  calls the runtime's PortForward right away; server-first protocols need that). A failure is
  written as text on the error channel; the WebSocket closes once every port is finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web
from multidict import MultiDict, MultiMapping

from meshbook.sandbox.node.wsstream import decode_channel, send_channel

__all__ = [
    "PORTFORWARD_SUBPROTOCOLS",
    "Connect",
    "dial",
    "handle_portforward",
    "io_cause",
    "parse_ports",
    "pod_sandbox_id",
    "portforward_error",
    "refused_cause",
    "request_sandbox_id",
    "serve_portforward",
]

log = logging.getLogger(__name__)

Connect = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None]]
"""Dial `port` inside the pod; None means nothing listens there (connection refused)."""

PORTFORWARD_SUBPROTOCOLS: dict[str, bool] = {
    "v4.channel.k8s.io": True,
    "v4.base64.channel.k8s.io": False,
}
"""WebSocket subprotocols the kubelet accepts for port-forward, mapped to "frames are binary"."""

_READ_CHUNK = 32 * 1024
_INBOUND_FRAMES = 8  # frames buffered per port before reading the WebSocket stalls, like wsstream's pipe
_PORT_TOKEN = re.compile(r"[0-9]+")
_POD_PATH = re.compile(r"/namespaces/([^/]+)/pods/([^/]+)/")


def parse_ports(query: str | MultiMapping[str]) -> list[int]:
    """The `ports` query of `pods/portforward` (a query string or `request.query`), in order.

    Accepts what the API server's `[]int32` query conversion and the kubelet accept: repeated
    `ports=` and comma lists of decimal 1-65535; duplicates are allowed (each gets its channels).
    """
    if isinstance(query, str):
        values: MultiMapping[str] = MultiDict(parse_qsl(query.removeprefix("?"), keep_blank_values=True))
    else:
        values = query
    raw = values.getall("ports", [])
    if not raw:
        raise ValueError('query parameter "ports" is required')
    ports: list[int] = []
    for value in raw:
        if value == "":
            raise ValueError('query parameter "ports" cannot be empty')
        for token in value.split(","):
            if not _PORT_TOKEN.fullmatch(token):
                raise ValueError(f'unable to parse "{value}" as a port: "{token}" is not a decimal number')
            port = int(token)
            if not 1 <= port <= 65535:
                raise ValueError(f'unable to parse "{value}" as a port: {token} is not in 1-65535')
            ports.append(port)
    return ports


def pod_sandbox_id(namespace: str, name: str) -> str:
    """A stable 64-hex pod sandbox id, the "pod" a CRI kubelet names in port-forward errors."""
    return hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()


def refused_cause(port: int, sandbox_id: str, reason: str = "connect: connection refused") -> str:
    """containerd's text when neither 127.0.0.1 nor ::1 accepts `port` (trailing space included)."""
    return (
        f'failed to connect to localhost:{port} inside namespace "{sandbox_id}", '
        f"IPv4: dial tcp4 127.0.0.1:{port}: {reason} IPv6 dial tcp6 [::1]:{port}: {reason} "
    )


def portforward_error(port: int, sandbox_id: str, cause: str) -> str:
    """The kubelet + containerd error text for a failed forward of `port` (CRI kubelets pass no uid)."""
    netns = f"/var/run/netns/cni-{uuid.UUID(sandbox_id[:32])}"
    return (
        f"error forwarding port {port} to pod {sandbox_id}, uid : "
        f'failed to execute portforward in network namespace "{netns}": {cause}'
    )


def _go_errno_text(exc: BaseException) -> str:
    """Go's wording of a socket error (`connection refused`, `i/o timeout`, ...)."""
    if isinstance(exc, TimeoutError):
        return "i/o timeout"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()  # asyncio rewrites strerror to "Connect call failed ..."
    return str(exc) or type(exc).__name__


def io_cause(op: str, writer: asyncio.StreamWriter, exc: BaseException) -> str:
    """`read tcp4 A->B: read: connection reset by peer`, as Go's net.OpError prints it."""
    local, peer = writer.get_extra_info("sockname"), writer.get_extra_info("peername")
    where = ""
    if isinstance(local, tuple) and isinstance(peer, tuple):
        family, left, right = "tcp4", f"{local[0]}:{local[1]}", f"{peer[0]}:{peer[1]}"
        if ":" in str(local[0]):
            family, left, right = "tcp6", f"[{local[0]}]:{local[1]}", f"[{peer[0]}]:{peer[1]}"
        where = f" {family} {left}->{right}"
    return f"{op}{where}: {op}: {_go_errno_text(exc)}"


async def dial(connect: Connect, port: int, sandbox_id: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | str:
    """The pod's connection on `port`, or why there is none in containerd's words (shared with SPDY)."""
    try:
        streams = await connect(port)
    except Exception as exc:
        log.debug("portforward: dialling port %d failed", port, exc_info=True)
        reason = "i/o timeout" if isinstance(exc, TimeoutError) else f"connect: {_go_errno_text(exc)}"
        return refused_cause(port, sandbox_id, reason)
    return refused_cause(port, sandbox_id) if streams is None else streams


def request_sandbox_id(request: web.Request) -> str:
    """The pod sandbox id for error texts, from the pod named in the request path."""
    match = _POD_PATH.search(request.path)
    return pod_sandbox_id(*match.groups()) if match else hashlib.sha256(request.path.encode()).hexdigest()


def _bad_request(message: str) -> web.HTTPBadRequest:
    """400 with a Kubernetes `Status` body, which kubectl and the Python client show as the message."""
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "BadRequest",
        "code": 400,
    }
    return web.HTTPBadRequest(text=json.dumps(status), content_type="application/json")


def _negotiate(request: web.Request) -> str:
    """Pick the subprotocol like wsstream: the client's first offer the kubelet knows, else 403."""
    header = request.headers.get("Sec-WebSocket-Protocol")
    if header is None:
        return ""
    offered = [p.strip() for p in header.split(",")]
    for protocol in offered:
        if protocol in PORTFORWARD_SUBPROTOCOLS:
            return protocol
    raise web.HTTPForbidden(text="")  # x/net/websocket answers 403 with no body


def _is_websocket(request: web.Request) -> bool:
    """`Upgrade: websocket` plus a `Connection` header that lists upgrade (wsstream's test)."""
    connection = [t.strip().lower() for t in request.headers.get("Connection", "").split(",")]
    return request.headers.get("Upgrade", "").lower() == "websocket" and "upgrade" in connection


@dataclass
class _Port:
    """One forwarded port: its channels and the client-to-pod bytes not yet written."""

    index: int
    port: int
    inbound: asyncio.Queue[bytes] = field(default_factory=lambda: asyncio.Queue(_INBOUND_FRAMES))
    done: bool = False

    @property
    def data_channel(self) -> int:
        return 2 * self.index

    @property
    def error_channel(self) -> int:
        return 2 * self.index + 1

    def finish(self) -> None:
        """Stop accepting client bytes; unblock a reader parked on a full queue."""
        self.done = True
        while not self.inbound.empty():
            self.inbound.get_nowait()


class _Session:
    """A port-forward WebSocket: the reader loop plus one forwarding task per port."""

    def __init__(self, ws: web.WebSocketResponse, binary: bool, sandbox_id: str, connect: Connect) -> None:
        self.ws = ws
        self.binary = binary
        self.sandbox_id = sandbox_id
        self.connect = connect

    async def send(self, channel: int, data: bytes) -> None:
        """Write one channel message; a client that already left is not an error here."""
        await send_channel(self.ws, self.binary, channel, data)

    def decode(self, data: bytes | str) -> tuple[int, bytes] | None:
        """Split a client message into (channel, payload); bad base64 is dropped, as wsstream does."""
        return decode_channel(self.binary, data)

    async def read_client(self, ports: list[_Port]) -> None:
        """Route client messages to their port until the client closes; unknown channels are ignored."""
        async for msg in self.ws:
            if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                continue
            decoded = self.decode(msg.data)
            if decoded is None:
                continue
            channel, payload = decoded
            if channel < 0 or channel % 2 or channel // 2 >= len(ports) or not payload:
                continue  # error channels are server-to-client only; empty frames carry nothing
            port = ports[channel // 2]
            if not port.done:
                await port.inbound.put(payload)

    async def forward(self, port: _Port) -> None:
        """Dial the pod port, then pump both ways; report a failure on the error channel."""
        try:
            cause = await self._forward(port)
        finally:
            port.finish()
        if cause:
            await self.send(port.error_channel, portforward_error(port.port, self.sandbox_id, cause).encode())

    async def _forward(self, port: _Port) -> str:
        """Returns the failure cause in Go's wording, or "" when the pod side closed cleanly."""
        streams = await dial(self.connect, port.port, self.sandbox_id)
        if isinstance(streams, str):
            return streams
        reader, writer = streams
        pumps = {
            asyncio.create_task(self._from_pod(port, reader, writer)),
            asyncio.create_task(self._to_pod(port, writer)),
        }
        try:
            done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            return done.pop().result()
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.wait(pumps)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _from_pod(self, port: _Port, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
        """Pod to client until EOF (the port is then done, as with containerd) or a read error."""
        while True:
            try:
                chunk = await reader.read(_READ_CHUNK)
            except OSError as exc:
                return io_cause("read", writer, exc)
            if not chunk:
                return ""
            await self.send(port.data_channel, chunk)

    async def _to_pod(self, port: _Port, writer: asyncio.StreamWriter) -> str:
        """Client to pod; returns only when the pod side breaks (v4 has no client half-close)."""
        while True:
            chunk = await port.inbound.get()
            try:
                writer.write(chunk)
                await writer.drain()
            except OSError as exc:
                return io_cause("write", writer, exc)


async def _stop(tasks: list[asyncio.Task[None]], what: str) -> None:
    """Cancel, wait (without swallowing a cancellation of the caller) and log unexpected failures."""
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.error("portforward: %s failed", what, exc_info=task.exception())


def _require_websocket(request: web.Request) -> None:
    """Only channel WebSockets here: SPDY (kubectl) is routed before, by `portforward_spdy`."""
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    tunnel_only = bool(offered) and all(p.startswith("SPDY/") for p in offered)
    if tunnel_only or not _is_websocket(request):
        supported = " or ".join(PORTFORWARD_SUBPROTOCOLS)
        raise _bad_request(
            f"port-forward needs a WebSocket upgrade with subprotocol {supported} "
            "(as kubernetes.stream.portforward sends) or, as kubectl port-forward sends, an upgrade to "
            "SPDY/3.1 or a WebSocket with subprotocol SPDY/3.1+portforward.k8s.io"
        )


async def handle_portforward(
    request: web.Request, connect: Connect, *, sandbox_id: str | None = None
) -> web.WebSocketResponse:
    """A whole route handler body: transport check, `ports` query (400 Status), then serve.

    The transport is checked first because kubectl's SPDY request carries no `ports` query
    (SPDY names the port per stream); its users should read about SPDY, not about `ports`.
    """
    _require_websocket(request)
    try:
        ports = parse_ports(request.query)
    except ValueError as exc:
        raise _bad_request(str(exc)) from None
    return await serve_portforward(request, ports, connect, sandbox_id=sandbox_id)


async def serve_portforward(
    request: web.Request,
    ports: list[int],
    connect: Connect,
    *,
    sandbox_id: str | None = None,
) -> web.WebSocketResponse:
    """Serve one port-forward WebSocket for `ports` (validated, e.g. by `parse_ports`).

    `connect(port)` is awaited once per port right after the handshake. A non-WebSocket request
    (kubectl's SPDY fallback) gets 400 with a Status naming what is supported. `sandbox_id` is the
    pod id quoted in error texts; by default it is derived from the request path.
    """
    if not ports or not all(1 <= p <= 65535 for p in ports):
        raise ValueError(f"serve_portforward needs ports in 1-65535, got {ports}")
    _require_websocket(request)
    protocol = _negotiate(request)
    if sandbox_id is None:
        sandbox_id = request_sandbox_id(request)
    ws = web.WebSocketResponse(protocols=(protocol,) if protocol else (), compress=False)
    await ws.prepare(request)
    session = _Session(ws, PORTFORWARD_SUBPROTOCOLS.get(protocol, True), sandbox_id, connect)
    streams = [_Port(i, p) for i, p in enumerate(ports)]
    for stream in streams:
        preamble = stream.port.to_bytes(2, "little")
        await session.send(stream.data_channel, preamble)
        await session.send(stream.error_channel, preamble)
    reader = asyncio.create_task(session.read_client(streams))
    forwards = [asyncio.create_task(session.forward(s)) for s in streams]
    pending: set[asyncio.Task[None]] = {reader, *forwards}
    try:
        while reader in pending and len(pending) > 1:  # until the client leaves or every port ended
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await _stop(forwards, "forwarding a port")  # the client left: drop every pod connection
        await ws.close()
        await _stop([reader], "reading the client")
    return ws
