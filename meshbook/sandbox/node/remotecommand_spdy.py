"""Exec and attach over SPDY/3.1, as kubectl before 1.30 (and later ones falling back) speaks them.

kubelet `remotecommand/httpstream.go` with the v4 protocol (`v4.channel.k8s.io`, the newest a SPDY
client offers in `X-Stream-Protocol-Version`): after the 101 the client opens one stream per channel,
named by its `streamType` header (`error`, then `stdin`, `stdout`, `stderr` as requested, and
`resize` with a tty); the kubelet replies to each and starts the process once every expected stream
is there (within 30 s). Output is written on its stream; stdin ends with the client's FIN; the resize
stream carries a sequence of JSON sizes. When the process ends the Status (the same JSON as on the
WebSocket error channel) is written on the error stream, and every stream and the connection close,
which is what kubectl waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

from aiohttp import web

from meshbook.sandbox.node.exec import ExecOptions, Send, Session, Stream
from meshbook.sandbox.node.remotecommand import run_session
from meshbook.sandbox.node.spdy import SpdySession, SpdyStream
from meshbook.sandbox.node.spdy_http import accept_spdy

__all__ = ["SPDY_PROTOCOLS", "STREAM_CREATION_TIMEOUT", "serve_spdy"]

log = logging.getLogger(__name__)

SPDY_PROTOCOLS = ("v4.channel.k8s.io",)
STREAM_CREATION_TIMEOUT = 30.0  # the kubelet's streamCreationTimeout default


def expected_streams(options: ExecOptions) -> frozenset[str]:
    """The stream types the client opens for these options (the kubelet waits for all of them)."""
    wanted = {"error"}
    wanted |= {name for name, on in (("stdin", options.stdin), ("stdout", options.stdout)) if on}
    wanted |= {"stderr"} if options.stderr else set()
    wanted |= {"resize"} if options.tty else set()
    return frozenset(wanted)


async def _accept_streams(spdy: SpdySession, wanted: frozenset[str]) -> dict[str, SpdyStream]:
    """Reply to the client's streams until every wanted type arrived; others are reset."""
    streams: dict[str, SpdyStream] = {}
    while not wanted <= streams.keys():
        stream = await spdy.accept()
        if stream is None:
            raise ConnectionError("the client closed the connection before opening every stream")
        kind = stream.headers.get("streamType", "")
        if kind not in wanted or kind in streams:
            await stream.reset()
            continue
        await stream.reply()
        streams[kind] = stream
    return streams


async def _pump_stdin(stream: SpdyStream, session: Session) -> None:
    while data := await stream.read():
        await session.feed_stdin(data)
    session.close_stdin()


async def _pump_resize(stream: SpdyStream, session: Session) -> None:
    """Sizes arrive as consecutive JSON objects (Go's json.Encoder), possibly split across frames."""
    decoder, pending = json.JSONDecoder(), ""
    while data := await stream.read():
        pending += data.decode("utf-8", errors="replace")
        while pending.strip():
            try:
                size, end = decoder.raw_decode(pending.lstrip())
            except ValueError:
                break
            pending = pending.lstrip()[end:]
            with contextlib.suppress(KeyError, TypeError, ValueError):
                session.resize(int(size["Width"]), int(size["Height"]))


async def serve_spdy(
    request: web.Request, options: ExecOptions, make_session: Callable[[Send], Session]
) -> web.StreamResponse:
    """Upgrade to SPDY, take the client's streams, run the session, write its status, close."""
    spdy, response, _ = await accept_spdy(request, SPDY_PROTOCOLS)
    serving = asyncio.ensure_future(spdy.serve())
    pumps: list[asyncio.Task[None]] = []
    try:
        try:
            streams = await asyncio.wait_for(_accept_streams(spdy, expected_streams(options)), STREAM_CREATION_TIMEOUT)
        except (TimeoutError, ConnectionError) as exc:
            log.info("exec over SPDY: %s", exc or "timed out waiting for the client's streams")
            return response

        async def send(stream_name: Stream, data: bytes) -> None:
            with contextlib.suppress(ConnectionError):
                await streams[stream_name].write(data)

        session = make_session(send)
        if "stdin" in streams:
            pumps.append(asyncio.ensure_future(_pump_stdin(streams["stdin"], session)))
        if "resize" in streams:
            pumps.append(asyncio.ensure_future(_pump_resize(streams["resize"], session)))
        status = await run_session(session, options.command, serving)
        if status is not None:
            with contextlib.suppress(ConnectionError):
                await streams["error"].write(status)
        for stream in streams.values():
            await stream.close()
        return response
    finally:
        for pump in pumps:
            pump.cancel()
        await spdy.close()
        serving.cancel()
        await asyncio.gather(serving, *pumps, return_exceptions=True)
