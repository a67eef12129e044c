"""Turning an aiohttp request into a SPDY session, the two ways kubectl asks for one.

* kubectl 1.30 and earlier: `Connection: Upgrade`, `Upgrade: SPDY/3.1` and one or more
  `X-Stream-Protocol-Version` offers; the kubelet (apimachinery `httpstream.Handshake`) picks the
  first offer it serves, answers 101 Switching Protocols naming it, and speaks SPDY on the raw
  connection. aiohttp only hands over connections upgraded to WebSocket, so after the 101 this module
  takes the bytes the way aiohttp's own WebSocketResponse does: a payload parser on the request's
  protocol (`set_parser`) receives every byte that arrives, and the response writes them.
* kubectl 1.31+ (PortForwardWebsockets, KEP-4006): a WebSocket whose subprotocol is `SPDY/3.1+` and
  the stream protocol (`SPDY/3.1+portforward.k8s.io`); the SPDY bytes travel in binary messages
  (the API server's tunnelling handler unwraps them for the kubelet).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, cast

from aiohttp import WSMsgType, web

from meshbook.sandbox.node.spdy import FrameTransport, SpdySession

__all__ = [
    "STREAM_PROTOCOL_HEADER",
    "TUNNEL_PREFIX",
    "SpdyRequest",
    "accept_spdy",
    "spdy_request_kind",
]

SPDY_UPGRADE = "SPDY/3.1"
TUNNEL_PREFIX = "SPDY/3.1+"  # client-go's WebsocketsSPDYTunnelingPrefix
STREAM_PROTOCOL_HEADER = "X-Stream-Protocol-Version"
ACCEPTED_PROTOCOLS_HEADER = "X-Accepted-Stream-Protocol-Versions"
_READ_LIMIT = 256 * 1024  # bytes buffered from the socket before reading it pauses


class SpdyRequest:
    """What kind of SPDY request this is: `upgrade` (HTTP/1.1) or `tunnel` (WebSocket)."""

    UPGRADE = "upgrade"
    TUNNEL = "tunnel"


def _tokens(value: str) -> list[str]:
    return [t.strip() for t in value.split(",") if t.strip()]


def spdy_request_kind(request: web.Request) -> str | None:
    """`SpdyRequest.UPGRADE`, `SpdyRequest.TUNNEL`, or None for anything else (e.g. channel WebSockets)."""
    connection = [t.lower() for t in _tokens(request.headers.get("Connection", ""))]
    upgrade = request.headers.get("Upgrade", "").lower()
    if "upgrade" not in connection:
        return None
    if SPDY_UPGRADE.lower() in upgrade:
        return SpdyRequest.UPGRADE
    offered = _tokens(request.headers.get("Sec-WebSocket-Protocol", ""))
    if upgrade == "websocket" and any(p.startswith(TUNNEL_PREFIX) for p in offered):
        return SpdyRequest.TUNNEL
    return None


def _negotiate(offered: list[str], served: Sequence[str]) -> str:
    """The first offer served, else 403 with apimachinery's wording and the accepted list."""
    for protocol in offered:
        if protocol in served:
            return protocol
    message = (
        "unable to upgrade: unable to negotiate protocol: "
        f"client supports [{' '.join(offered)}], server accepts [{' '.join(served)}]"
    )
    headers = [(ACCEPTED_PROTOCOLS_HEADER, p) for p in served]
    raise web.HTTPForbidden(text=message + "\n", headers=headers)


class _UpgradedConnection:
    """The raw connection after a 101: aiohttp feeds it (`feed_data`/`feed_eof`), SPDY reads and writes."""

    def __init__(self, request: web.Request, response: web.StreamResponse) -> None:
        self._transport = request.transport
        self._response = response
        self._buffer = bytearray()
        self._ended = False
        self._paused = False
        self._arrived = asyncio.Event()

    # aiohttp's payload-parser interface (what RequestHandler.data_received / connection_lost call)
    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._buffer += data
        self._arrived.set()
        if len(self._buffer) >= _READ_LIMIT and self._transport is not None and not self._paused:
            self._paused = True
            self._transport.pause_reading()
        return False, b""

    def feed_eof(self) -> None:
        self._ended = True
        self._arrived.set()

    # FrameTransport
    async def read(self) -> bytes:
        while not self._buffer:
            if self._ended:
                return b""
            self._arrived.clear()
            await self._arrived.wait()
        data = bytes(self._buffer)
        self._buffer.clear()
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return data

    async def write(self, data: bytes) -> None:
        if self._ended:
            raise ConnectionResetError("the SPDY connection is closed")
        await self._response.write(data)

    async def close(self) -> None:
        """Stop reading; the connection closes when the handler returns (the response forces close)."""
        self.feed_eof()


class _TunnelConnection:
    """SPDY bytes in WebSocket binary messages (client-go's TunnelingConnection, server side)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self._ws = ws

    async def read(self) -> bytes:
        while True:
            msg = await self._ws.receive()
            if msg.type is WSMsgType.BINARY:
                if msg.data:
                    return cast(bytes, msg.data)
                continue
            return b""  # close, error, or a text message, which the tunnel never carries

    async def write(self, data: bytes) -> None:
        await self._ws.send_bytes(data)

    async def close(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self._ws.close()


async def accept_spdy(request: web.Request, protocols: Sequence[str]) -> tuple[SpdySession, web.StreamResponse, str]:
    """Switch `request` to SPDY speaking one of `protocols` (e.g. `portforward.k8s.io`).

    Returns the session (run its `serve()`), the response for the handler to return once the
    session is over, and the negotiated protocol. Refusals are raised as aiohttp HTTP errors.
    """
    transport: FrameTransport
    kind = spdy_request_kind(request)
    if kind == SpdyRequest.TUNNEL:
        offered = _tokens(request.headers.get("Sec-WebSocket-Protocol", ""))
        inner = [p.removeprefix(TUNNEL_PREFIX) for p in offered if p.startswith(TUNNEL_PREFIX)]
        protocol = _negotiate(inner, protocols)
        ws = web.WebSocketResponse(protocols=(TUNNEL_PREFIX + protocol,), compress=False)
        await ws.prepare(request)
        return SpdySession(_TunnelConnection(ws)), ws, protocol
    if kind != SpdyRequest.UPGRADE:
        raise web.HTTPBadRequest(text=f"unable to upgrade: the request asks for no {SPDY_UPGRADE} upgrade\n")
    offered = request.headers.getall(STREAM_PROTOCOL_HEADER, [])
    if not offered:
        raise web.HTTPBadRequest(text=f"unable to upgrade: {STREAM_PROTOCOL_HEADER} is required\n")
    protocol = _negotiate(list(offered), protocols)
    response = web.StreamResponse(
        status=101,
        headers={"Connection": "Upgrade", "Upgrade": SPDY_UPGRADE, STREAM_PROTOCOL_HEADER: protocol},
    )
    response.force_close()
    connection = _UpgradedConnection(request, response)
    request.protocol.set_parser(cast(Any, connection))  # before the 101: no byte may reach the HTTP parser
    await response.prepare(request)
    transport = connection
    return SpdySession(transport), response, protocol
