"""The remote-command protocols of `pods/exec` and `pods/attach`: options, and the WebSocket channels.

Query (kubelet `remotecommand.NewOptions` behind the API server's `PodExecOptions`): `command`
repeated, `stdin`/`stdout`/`stderr`/`tty` booleans (absent is false, "0"/"false" false, anything else
true); at least one stream is required, and a tty has no separate stderr.

WebSocket subprotocols (kubelet `createWebSocketStreams`, apiserver's StreamTranslator for v5):
`v5.channel.k8s.io` (kubectl 1.30+), `v4.channel.k8s.io` (binary) and `v4.base64.channel.k8s.io` (text:
channel digit + base64); the first offer the server knows wins, none: 403 with an empty body. Every
message starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 error (one `metav1.Status` JSON when
the process ends), 4 resize (`{"Width":W,"Height":H}`); v5 adds 255, whose payload is a channel the
client closes (stdin's end of input). The server closes the socket after the status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import WSMsgType, web
from multidict import MultiMapping

from meshbook.sandbox.node.exec import ExecOptions, ExecResult, Send, Session, Stream, exec_status
from meshbook.sandbox.node.wsstream import decode_channel, send_channel

__all__ = [
    "EXEC_SUBPROTOCOLS",
    "STREAM_CHANNELS",
    "is_websocket",
    "parse_exec_options",
    "serve_websocket",
]

log = logging.getLogger(__name__)

V5 = "v5.channel.k8s.io"
EXEC_SUBPROTOCOLS: dict[str, bool] = {V5: True, "v4.channel.k8s.io": True, "v4.base64.channel.k8s.io": False}
"""WebSocket subprotocols served for exec and attach, mapped to "frames are binary"."""

STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
STREAM_CHANNELS: dict[Stream, int] = {"stdout": STDOUT, "stderr": STDERR}


def _flag(query: MultiMapping[str], name: str) -> bool:
    """Go's `Convert_Slice_string_To_bool`: absent, "0" and "false" are false, anything else true."""
    values = query.getall(name, [])
    return bool(values) and values[0] != "0" and values[0].lower() != "false"


def parse_exec_options(query: MultiMapping[str], attach: bool = False) -> ExecOptions:
    """The request's streams and command; ValueError with the kubelet's text when none is asked for."""
    stdin, stdout, stderr, tty = (_flag(query, name) for name in ("stdin", "stdout", "stderr", "tty"))
    if not (stdin or stdout or stderr):
        raise ValueError("you must specify at least 1 of stdin, stdout, stderr")
    command = () if attach else tuple(query.getall("command", []))
    return ExecOptions(command, stdin, stdout, stderr and not tty, tty)


def is_websocket(request: web.Request) -> bool:
    """`Upgrade: websocket` plus a `Connection` header that lists upgrade (wsstream's test)."""
    connection = [t.strip().lower() for t in request.headers.get("Connection", "").split(",")]
    return request.headers.get("Upgrade", "").lower() == "websocket" and "upgrade" in connection


def _negotiate(request: web.Request) -> str:
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    for protocol in offered:
        if protocol in EXEC_SUBPROTOCOLS:
            return protocol
    raise web.HTTPForbidden(text="")  # x/net/websocket refuses an unknown protocol with an empty 403


class _Channels:
    """One negotiated WebSocket: channel framing both ways."""

    def __init__(self, ws: web.WebSocketResponse, protocol: str) -> None:
        self.ws = ws
        self.binary = EXEC_SUBPROTOCOLS[protocol]
        self.closes = protocol == V5
        self._lock = asyncio.Lock()

    async def send(self, channel: int, data: bytes) -> None:
        async with self._lock:
            await send_channel(self.ws, self.binary, channel, data)

    def decode(self, data: bytes | str) -> tuple[int, bytes] | None:
        return decode_channel(self.binary, data)

    async def read(self, session: Session) -> None:
        """Route stdin, resize and (v5) close messages to the session until the client leaves."""
        async for msg in self.ws:
            if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                continue
            decoded = self.decode(msg.data)
            if decoded is None:
                continue
            channel, payload = decoded
            if channel == STDIN and payload:
                await session.feed_stdin(payload)
            elif channel == RESIZE:
                _resize(session, payload)
            elif channel == CLOSE and self.closes and payload[:1] == bytes((STDIN,)):
                session.close_stdin()
        session.close_stdin()


def _resize(session: Session, payload: bytes) -> None:
    """`{"Width":80,"Height":24}`; a malformed size is ignored, as the kubelet logs and goes on."""
    try:
        size = json.loads(payload)
        session.resize(int(size["Width"]), int(size["Height"]))
    except (ValueError, KeyError, TypeError):
        log.debug("exec: ignoring a malformed terminal size")


def status_bytes(command: Sequence[str], result: ExecResult) -> bytes:
    """The error channel's message: the Status as Go's `json.Marshal` writes it (compact)."""
    status: dict[str, Any] = exec_status(command, result)
    return json.dumps(status, separators=(",", ":")).encode()


async def run_session(session: Session, command: Sequence[str], read_client: asyncio.Task[None]) -> bytes | None:
    """Run until the process ends (its status message) or the client leaves (None)."""
    run = asyncio.ensure_future(session.run())
    try:
        await asyncio.wait({run, read_client}, return_when=asyncio.FIRST_COMPLETED)
        if not run.done():
            return None
        try:
            result = run.result()
        except Exception as exc:  # a failure of the sandbox's program is the runtime's failure
            log.exception("exec: the session failed")
            result = ExecResult(start_error=f"failed to exec in container: {type(exc).__name__}")
        return status_bytes(command, result)
    finally:
        if not run.done():
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run


async def serve_websocket(
    request: web.Request, command: Sequence[str], make_session: Callable[[Send], Session]
) -> web.WebSocketResponse:
    """Upgrade, run the session made for this connection, write its status, close."""
    protocol = _negotiate(request)
    ws = web.WebSocketResponse(protocols=(protocol,), compress=False)
    await ws.prepare(request)
    channels = _Channels(ws, protocol)

    async def send(stream: Stream, data: bytes) -> None:
        await channels.send(STREAM_CHANNELS[stream], data)

    session = make_session(send)
    reader = asyncio.ensure_future(channels.read(session))
    try:
        status = await run_session(session, command, reader)
        if status is not None:
            await channels.send(ERROR, status)
    finally:
        await ws.close()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    return ws
