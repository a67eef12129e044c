"""`pods/{name}/log`: the kubelet's container log reader, over a log store someone else owns.

What clients see (kubectl logs, the Python client's `read_namespaced_pod_log`) is plain text,
streamed chunked, each batch of lines in one write so `follow=true` readers get lines as they are appended.
Options follow the API server (`PodLogOptions` validation, query booleans true unless "false"/"0")
and the kubelet (`tailLines` picks the last N lines before `sinceSeconds`/`sinceTime` filter them,
`limitBytes` counts output bytes including timestamps and may cut a line, `timestamps` prefixes
RFC3339 with nine fixed fraction digits in UTC and a space).

Choosing the container (`container`, `previous`) and answering 404/400 for a missing pod or a
waiting container is the caller's job: it hands `serve_log` the right `LogSource`.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from aiohttp import web
from multidict import MultiMapping

from meshbook.sandbox.clock import current as current_clock

__all__ = [
    "LogLine",
    "LogOptions",
    "LogOptionsError",
    "LogSource",
    "format_timestamp",
    "parse_log_options",
    "serve_log",
]

LogLine = tuple[datetime, str]
"""When the line was written (naive means UTC) and its text without the trailing newline."""

_LIVENESS_INTERVAL = 1.0  # seconds between checks that a following client is still connected
_CHUNK = 64 * 1024  # bytes of log text per write
_GO_INT = re.compile(r"[+-]?[0-9]+")


class LogSource(Protocol):
    """One container's log as the log store exposes it to `serve_log`.

    Indexes count lines from the container's first line; lines never change once appended, but the
    oldest may be rotated away (`logfiles.py`).
    """

    def snapshot(self) -> tuple[int, Sequence[LogLine]]:
        """The lines a reader sees now (oldest first), and the index of the first of them."""
        ...

    async def wait_new(self, after_index: int) -> Sequence[LogLine] | None:
        """Wait for lines after the first `after_index` ones and return them (never empty).

        Returns None once the container has terminated and no line after `after_index` exists;
        returns at once when such lines already exist. Must tolerate cancellation (a client left).
        """
        ...


@dataclass(frozen=True)
class LogOptions:
    """The `PodLogOptions` this module honours (others, e.g. `container`, are the caller's)."""

    follow: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    limit_bytes: int | None = None
    since_seconds: int | None = None
    since_time: datetime | None = None


class LogOptionsError(ValueError):
    """Invalid log options; `status` is the Kubernetes Status object the API server would send."""

    def __init__(self, status: dict[str, Any]) -> None:
        super().__init__(status["message"])
        self.status = status

    def http_exception(self) -> web.HTTPException:
        """The aiohttp exception carrying this Status (400 or 422)."""
        cls = web.HTTPUnprocessableEntity if self.status["code"] == 422 else web.HTTPBadRequest
        return cls(text=json.dumps(self.status), content_type="application/json")


def _status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """A `Status` failure object."""
    status: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
    status.update(message=message, reason=reason, code=code)
    if details is not None:
        status["details"] = details
    return status


def _query_bool(query: MultiMapping[str], key: str) -> bool:
    """API-server query booleans: absent, "false" (any case) and "0" are false; anything else true."""
    value = query.get(key)
    return value is not None and value.lower() != "false" and value != "0"


def _query_int(query: MultiMapping[str], key: str) -> int | None:
    """An int64 query value, parsed like Go's strconv.ParseInt."""
    value = query.get(key)
    if value is None:
        return None
    problem = "invalid syntax" if not _GO_INT.fullmatch(value) else ""
    if not problem and not -(2**63) <= int(value) < 2**63:
        problem = "value out of range"
    if problem:
        raise LogOptionsError(_status(400, "BadRequest", f'strconv.ParseInt: parsing "{value}": {problem}'))
    return int(value)


def _query_time(query: MultiMapping[str], key: str) -> datetime | None:
    """An RFC 3339 query time (as `metav1.Time` parses it)."""
    value = query.get(key)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None or "T" not in value:
        message = f'parsing time "{value}" as "2006-01-02T15:04:05Z07:00": cannot parse as RFC3339'
        raise LogOptionsError(_status(400, "BadRequest", message))
    return parsed


def parse_log_options(query: MultiMapping[str], pod_name: str) -> LogOptions:
    """Parse and validate the query like the API server; raises LogOptionsError (400 or 422)."""
    opts = LogOptions(
        follow=_query_bool(query, "follow"),
        timestamps=_query_bool(query, "timestamps"),
        tail_lines=_query_int(query, "tailLines"),
        limit_bytes=_query_int(query, "limitBytes"),
        since_seconds=_query_int(query, "sinceSeconds"),
        since_time=_query_time(query, "sinceTime"),
    )
    tail, limit, seconds = opts.tail_lines, opts.limit_bytes, opts.since_seconds
    invalid = "FieldValueInvalid"
    causes: list[tuple[str, str, str]] = []  # (field, reason, body) as field.ErrorList renders them
    if tail is not None and tail < 0:
        causes.append(("tailLines", invalid, f"Invalid value: {tail}: must be greater than or equal to 0"))
    if limit is not None and limit < 1:
        causes.append(("limitBytes", invalid, f"Invalid value: {limit}: must be greater than 0"))
    if seconds is not None and opts.since_time is not None:
        only_one = "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified"
        causes.append(("", "FieldValueForbidden", only_one))
    elif seconds is not None and seconds < 1:
        causes.append(("sinceSeconds", invalid, f"Invalid value: {seconds}: must be greater than 0"))
    if causes:
        texts = [f"{name}: {body}" for name, _, body in causes]
        summary = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
        details = {
            "name": pod_name,
            "kind": "PodLogOptions",
            "causes": [{"reason": reason, "message": body, "field": name} for name, reason, body in causes],
        }
        message = f'PodLogOptions "{pod_name}" is invalid: {summary}'
        raise LogOptionsError(_status(422, "Invalid", message, details))
    return opts


def format_timestamp(when: datetime) -> str:
    """The kubelet's `timestamps=true` prefix: UTC, nine fraction digits (Go's RFC3339NanoFixed)."""
    utc = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}000Z"


class _Writer:
    """Formats lines and enforces `limitBytes`; `full` turns true once the limit is reached.

    Each call is one write (a chunk up to `_CHUNK` bytes), so a follower gets new lines as they come
    while a 10 MiB log is not sent line by line.
    """

    def __init__(self, response: web.StreamResponse, opts: LogOptions, since: datetime | None) -> None:
        self.response = response
        self.opts = opts
        self.since = since
        self.remaining = opts.limit_bytes
        self.full = False

    async def write(self, lines: Sequence[LogLine]) -> None:
        chunk = bytearray()
        for when, text in lines:
            if self.full:
                break
            if self.since is not None and _aware(when) < self.since:
                continue
            prefix = format_timestamp(current_clock().served(_aware(when))) + " " if self.opts.timestamps else ""
            data = (prefix + text + "\n").encode("utf-8")
            if self.remaining is not None:
                data = data[: self.remaining]
                self.remaining -= len(data)
                self.full = self.remaining == 0
            chunk += data
            if len(chunk) >= _CHUNK:
                await self.response.write(bytes(chunk))
                chunk.clear()
        if chunk:
            await self.response.write(bytes(chunk))


def _aware(when: datetime) -> datetime:
    """Naive log times are UTC."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


async def _next_lines(request: web.Request, source: LogSource, seen: int) -> Sequence[LogLine] | None:
    """`source.wait_new(seen)`; None also when the client disconnected while we waited."""
    waiting = asyncio.ensure_future(source.wait_new(seen))
    try:
        while not waiting.done():
            await asyncio.wait({waiting}, timeout=_LIVENESS_INTERVAL)
            transport = request.transport
            if not waiting.done() and (transport is None or transport.is_closing()):
                return None
        return waiting.result()
    finally:
        if not waiting.done():
            waiting.cancel()
            await asyncio.wait({waiting})


async def serve_log(
    request: web.Request,
    lines_source: LogSource,
    *,
    now: Callable[[], datetime] = lambda: current_clock().now(),
) -> web.StreamResponse:
    """Answer a `pods/{name}/log` request from `lines_source` (options from the query).

    Invalid options raise the API server's 400/422 Status. With `follow=true` the response stays
    open, one chunk per line, until the source reports termination, `limitBytes` is reached or the
    client disconnects (noticed at the next line, or within about a second while idle). Log times are
    the sandbox clock's: `sinceTime` and the `timestamps` prefix are shifted as objects' times are.
    """
    try:
        opts = parse_log_options(request.query, request.match_info.get("name", ""))
    except LogOptionsError as exc:
        raise exc.http_exception() from None
    since = current_clock().stored(opts.since_time) if opts.since_time is not None else None
    if opts.since_seconds is not None:
        since = now() - timedelta(seconds=opts.since_seconds)
    response = web.StreamResponse(status=200)
    response.content_type = "text/plain"
    response.enable_chunked_encoding()
    await response.prepare(request)
    writer = _Writer(response, opts, since)
    first, lines = lines_source.snapshot()
    seen = first + len(lines)
    if opts.tail_lines is not None:
        lines = lines[max(seen - opts.tail_lines, 0) :]
    try:
        await writer.write(lines)
        while opts.follow and not writer.full:
            new = await _next_lines(request, lines_source, seen)
            if new is None:
                break
            seen += len(new)
            await writer.write(new)
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client left mid-stream; nothing to tell anyone
    return response
