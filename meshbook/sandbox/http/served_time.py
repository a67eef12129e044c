"""Objects' times on the wire: stored on the sandbox clock, served on the client's (see `clock.py`).

At `instant` speed the clock skips the seconds a crash-looping container backs off, so stored times
run ahead of the wall clock. Clients judge times by their wall clocks (kubectl's AGE, `<invalid>` for
the future), so every time in a response is served `skipped` seconds earlier and every time in a
request body stored that much later. The fields are data: one list of paths, and one list of the
places objects sit in a body (the body itself, a list's items, a Table's rows), so an answer of any
shape (get, list, Table, PartialObjectMetadata, watch event) converts the same way. With nothing
skipped (always at `realistic` speed) bodies pass through untouched.

Not converted: a JSON patch's values (a list of operations, not an object), and times other software
checks with its own clock (a TokenRequest's expirationTimestamp, JWTs), which are wall time already.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from meshbook.sandbox.clock import SandboxClock
from meshbook.sandbox.clock import current as current_clock

_CONTAINER_TIMES = (
    "state.running.startedAt",
    "state.terminated.startedAt",
    "state.terminated.finishedAt",
    "lastState.running.startedAt",
    "lastState.terminated.startedAt",
    "lastState.terminated.finishedAt",
)
_CONDITION_TIMES = ("lastTransitionTime", "lastProbeTime", "lastUpdateTime", "lastHeartbeatTime")

#: Every metav1.Time / MicroTime field the sandbox stores, as dotted paths (`[]`: each item of a list).
TIMESTAMP_FIELDS: tuple[str, ...] = (
    "metadata.creationTimestamp",
    "metadata.deletionTimestamp",
    "metadata.managedFields[].time",
    "status.startTime",  # Pod, Job
    "status.completionTime",  # Job
    "status.lastScheduleTime",  # CronJob
    "status.lastSuccessfulTime",  # CronJob
    *(f"status.conditions[].{field}" for field in _CONDITION_TIMES),
    *(
        f"status.{statuses}[].{field}"
        for statuses in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses")
        for field in _CONTAINER_TIMES
    ),
    "firstTimestamp",  # core/v1 Event
    "lastTimestamp",
    "eventTime",
    "series.lastObservedTime",
    "deprecatedFirstTimestamp",  # events.k8s.io/v1 Event
    "deprecatedLastTimestamp",
    "spec.acquireTime",  # coordination.k8s.io Lease
    "spec.renewTime",
)

#: Where objects sit in a body: the body itself, a list's items, a Table's rows.
OBJECT_PLACES: tuple[str, ...] = ("", "items[]", "rows[].object")


def _segments(path: str) -> tuple[str, ...]:
    """`status.conditions[].lastTransitionTime` -> ("status", "conditions", "[]", "lastTransitionTime")."""
    parts: list[str] = []
    for piece in filter(None, path.split(".")):
        parts += [piece.removesuffix("[]"), "[]"] if piece.endswith("[]") else [piece]
    return tuple(parts)


_PATHS = tuple(_segments(place) + _segments(field) for place in OBJECT_PLACES for field in TIMESTAMP_FIELDS)


def _converted(text: str, convert: Callable[[datetime], datetime]) -> str:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text  # not a time: validation answers for it, not this
    if moment.tzinfo is None:
        return text
    shape = "%Y-%m-%dT%H:%M:%S.%fZ" if "." in text else "%Y-%m-%dT%H:%M:%SZ"  # MicroTime keeps its fraction
    return convert(moment).astimezone(UTC).strftime(shape)  # as Go writes metav1.Time: UTC, `Z`


def _walk(value: Any, path: tuple[str, ...], convert: Callable[[datetime], datetime]) -> Any:
    """`value` with the time at `path` converted; containers on the way are copied, never changed in place
    (stored objects are shared)."""
    if not path:
        return _converted(value, convert) if isinstance(value, str) else value
    head, rest = path[0], path[1:]
    if head == "[]":
        if not isinstance(value, list):
            return value
        items = [_walk(item, rest, convert) for item in value]
        return items if any(new is not old for new, old in zip(items, value, strict=True)) else value
    if not isinstance(value, dict) or head not in value:
        return value
    child = _walk(value[head], rest, convert)
    return value if child is value[head] else {**value, head: child}


def _convert_body(body: Any, convert: Callable[[datetime], datetime]) -> Any:
    for path in _PATHS:
        body = _walk(body, path, convert)
    return body


def served_body(body: Any, clock: SandboxClock | None = None) -> Any:
    """A response body with its objects' times as the client's clock shows them."""
    clock = clock or current_clock()
    return _convert_body(body, clock.served) if clock.skipped else body


def stored_body(body: Any, clock: SandboxClock | None = None) -> Any:
    """A request body with the times the client sent as the sandbox clock's."""
    clock = clock or current_clock()
    return _convert_body(body, clock.stored) if clock.skipped else body
