"""The API server's WebSocket channel framing (`wsstream`), shared by exec/attach and port-forward.

Every message starts with its channel: one byte in the binary protocols (`v4.channel.k8s.io`,
`v5.channel.k8s.io`), an ASCII digit followed by base64 in `v4.base64.channel.k8s.io`.
"""

from __future__ import annotations

import base64
import contextlib

from aiohttp import web


async def send_channel(ws: web.WebSocketResponse, binary: bool, channel: int, data: bytes) -> None:
    """Write one channel message; a client that already left is not an error here."""
    with contextlib.suppress(ConnectionError):
        if binary:
            await ws.send_bytes(bytes((channel,)) + data)
        else:
            await ws.send_str(chr(ord("0") + channel) + base64.b64encode(data).decode("ascii"))


def decode_channel(binary: bool, data: bytes | str) -> tuple[int, bytes] | None:
    """Split a client message into (channel, payload); an empty one or bad base64 is dropped, as wsstream does."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if not raw:
        return None
    if binary:
        return raw[0], raw[1:]
    try:
        return raw[0] - ord("0"), base64.b64decode(raw[1:], validate=True)
    except ValueError:
        return None
