"""`pods/{name}/portforward` as kubectl speaks it: the `portforward.k8s.io` protocol over SPDY/3.1.

kubectl opens, per local connection it accepts, an error stream and then a data stream, both with
headers `streamType` (`error` / `data`), `port` and `requestID`; the kubelet (`portforward/httpstream.go`)
replies to each, pairs them by requestID (an old client sends none: the stream id stands in), and once
both are there dials the pod port through the runtime (containerd) and copies both ways. A failure is
written as text on the error stream, which kubectl prints; then both streams are half-closed.
Copying ends like containerd's: when one direction ends, the other gets a second more.

`handle_portforward_request` is the route's whole body: SPDY (upgrade or WebSocket tunnel) here, the
WebSocket channel protocol of the official Python client in `portforward.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from meshbook.sandbox.node.portforward import (
    Connect,
    dial,
    handle_portforward,
    io_cause,
    portforward_error,
    request_sandbox_id,
)
from meshbook.sandbox.node.spdy import SpdySession, SpdyStream, SpdyStreamClosed
from meshbook.sandbox.node.spdy_frames import RstStatus
from meshbook.sandbox.node.spdy_http import accept_spdy, spdy_request_kind

__all__ = ["PORTFORWARD_PROTOCOL", "handle_portforward_request", "serve_spdy_portforward"]

log = logging.getLogger(__name__)

PORTFORWARD_PROTOCOL = "portforward.k8s.io"
STREAM_CREATION_TIMEOUT = 30.0  # kubelet's default: a pair must be complete this long after its first stream
CLOSE_GRACE = 1.0  # containerd: once one direction ends, the other has this long to finish
_READ_CHUNK = 32 * 1024
_STREAM_TYPES = ("error", "data")


def _stream_problem(stream: SpdyStream) -> str | None:
    """Why the kubelet rejects a stream's headers (it then resets the stream), or None."""
    port = stream.headers.get("port", "")
    if not port:
        return '"port" header is required'
    if not port.isdigit() or int(port) > 65535:
        return f'unable to parse "{port}" as a port'
    if int(port) < 1:
        return f'port "{port}" must be > 0'
    stream_type = stream.headers.get("streamType", "")
    if not stream_type:
        return '"streamType" header is required'
    if stream_type not in _STREAM_TYPES:
        return f'invalid stream type "{stream_type}"'
    return None


def _request_id(stream: SpdyStream) -> str:
    """The `requestID` header; for clients that send none, the kubelet's guess from the stream id."""
    request_id = stream.headers.get("requestID")
    if request_id:
        return request_id
    offset = 0 if stream.headers.get("streamType") == "error" else 2
    return str(stream.id - offset)


@dataclass
class _StreamPair:
    request_id: str
    error: SpdyStream | None = None
    data: SpdyStream | None = None

    def add(self, stream: SpdyStream) -> str | None:
        """Place `stream`; the kubelet's complaint when its slot is taken."""
        kind = stream.headers.get("streamType", "")
        if getattr(self, kind) is not None:
            return f"{kind} stream already assigned"
        setattr(self, kind, stream)
        return None

    @property
    def complete(self) -> bool:
        return self.error is not None and self.data is not None

    async def print_error(self, message: str) -> None:
        if self.error is not None:
            with contextlib.suppress(SpdyStreamClosed):
                await self.error.write(message.encode())


class _Forwarder:
    """The kubelet's httpStreamHandler for one SPDY connection."""

    def __init__(self, session: SpdySession, connect: Connect, sandbox_id: str) -> None:
        self.session = session
        self.connect = connect
        self.sandbox_id = sandbox_id
        self.pairs: dict[str, _StreamPair] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run(self) -> None:
        while (stream := await self.session.accept()) is not None:
            problem = _stream_problem(stream)
            if problem is not None:
                log.info("portforward: stream %d rejected: %s", stream.id, problem)
                await stream.reset(RstStatus.CANCEL)  # spdystream's Reset
                continue
            await stream.reply()
            request_id = _request_id(stream)
            pair = self.pairs.get(request_id)
            if pair is None:
                pair = self.pairs[request_id] = _StreamPair(request_id)
                self.spawn(self.monitor(pair))
            complaint = pair.add(stream)
            if complaint is not None:
                await pair.print_error(f"error processing stream for request {request_id}: {complaint}")
            elif pair.complete:
                self.pairs.pop(request_id, None)
                self.spawn(self.forward(pair))

    async def monitor(self, pair: _StreamPair) -> None:
        """The kubelet gives a pair STREAM_CREATION_TIMEOUT to complete."""
        await asyncio.sleep(STREAM_CREATION_TIMEOUT)
        if self.pairs.get(pair.request_id) is pair:
            del self.pairs[pair.request_id]
            await pair.print_error(f"(conn=sandbox, request={pair.request_id}) timed out waiting for streams")
            for stream in (pair.error, pair.data):
                if stream is not None:
                    await stream.close()

    async def forward(self, pair: _StreamPair) -> None:
        assert pair.error is not None and pair.data is not None
        port = int(pair.data.headers["port"])
        try:
            cause = await self._copy(port, pair.data)
            if cause:
                await pair.print_error(portforward_error(port, self.sandbox_id, cause))
        finally:
            pair.data.discard_input()
            await pair.error.close()
            await pair.data.close()

    async def _copy(self, port: int, data: SpdyStream) -> str:
        """Dial, then copy both ways; the failure cause in Go's words, or "" for a clean end."""
        streams = await dial(self.connect, port, self.sandbox_id)
        if isinstance(streams, str):
            return streams
        reader, writer = streams
        first_done = asyncio.Event()
        copies = [
            asyncio.create_task(_pod_to_client(reader, writer, data)),
            asyncio.create_task(_client_to_pod(data, writer)),
        ]
        for copy in copies:
            copy.add_done_callback(lambda _: first_done.set())
        try:
            await first_done.wait()
            await asyncio.wait(copies, timeout=CLOSE_GRACE)
            results = [c.result() for c in copies if c.done() and not c.cancelled()]
            return next((r for r in results if r), "")
        finally:
            for copy in copies:
                copy.cancel()
            await asyncio.gather(*copies, return_exceptions=True)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _pod_to_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: SpdyStream) -> str:
    while True:
        try:
            chunk = await reader.read(_READ_CHUNK)
        except OSError as exc:
            return io_cause("read", writer, exc)
        if not chunk:
            return ""
        try:
            await data.write(chunk)
        except (SpdyStreamClosed, ConnectionError):
            return ""  # kubectl reset the stream or left: nothing to report to anyone


async def _client_to_pod(data: SpdyStream, writer: asyncio.StreamWriter) -> str:
    while chunk := await data.read():
        try:
            writer.write(chunk)
            await writer.drain()
        except OSError as exc:
            return io_cause("write", writer, exc)
    return ""  # kubectl half-closed (its local connection ended); containerd does not pass that on


async def serve_spdy_portforward(session: SpdySession, connect: Connect, sandbox_id: str) -> None:
    """Serve the port-forward protocol on `session` until the client goes; every pod connection is closed."""
    forwarder = _Forwarder(session, connect, sandbox_id)
    serving = asyncio.create_task(session.serve())
    try:
        await forwarder.run()  # returns once the session ended (kubectl exited or closed the connection)
    finally:
        for task in [*forwarder.tasks, serving]:
            task.cancel()
        await asyncio.gather(*forwarder.tasks, serving, return_exceptions=True)
        await session.close()


async def handle_portforward_request(
    request: web.Request, connect: Connect, *, sandbox_id: str | None = None
) -> web.StreamResponse:
    """The route's body for `pods/portforward`: SPDY for kubectl, channel WebSockets otherwise."""
    if spdy_request_kind(request) is None:
        return await handle_portforward(request, connect, sandbox_id=sandbox_id)
    session, response, _ = await accept_spdy(request, (PORTFORWARD_PROTOCOL,))
    await serve_spdy_portforward(session, connect, sandbox_id or request_sandbox_id(request))
    return response
