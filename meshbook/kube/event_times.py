"""How old an Event is, and whether it happened after a moment, without trusting the server's clock alone.

Why: an Event's timestamps are the API server's clock, not ours. A meshbook sandbox at `instant` speed
simulates the kubelet's back-off (10 s doubling to 5 min) and serves its past shifted accordingly, so
an Event can look minutes old a second after it happened; a real cluster's clock may be skewed too.
A wait that gives up "after 30 s of FailedMount" or looks for "FailedCreate since the wait began" must
neither give up early nor miss a fresh refusal because of that. So durations are measured from when
this process first saw the Event (never longer than its own timestamps say), and "after a moment"
also counts an Event that appeared or repeated (a new resourceVersion) after the wait's first look.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any


def event_time(event: Mapping[str, Any], *fields: str) -> float:
    """The first of `fields` the Event sets, in seconds since the epoch (0.0 if none parses)."""
    for field in fields or ("lastTimestamp", "eventTime", "firstTimestamp"):
        text = str(event.get(field) or "")
        if text:
            try:
                return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
            except ValueError:
                return 0.0
    return 0.0


def _uid(event: Mapping[str, Any]) -> str:
    meta = event.get("metadata") or {}
    return str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")


class EventSightings:
    """When this process first saw each Event (by uid), on its own clock."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._first: dict[str, float] = {}

    def lasted(self, event: Mapping[str, Any]) -> float:
        """Seconds the Event's condition has lasted: since it was first stamped or first seen here,
        whichever is later."""
        now = self._clock()
        seen = self._first.setdefault(_uid(event), now)
        stamped = event_time(event, "firstTimestamp", "eventTime")
        return now - max(seen, stamped)


#: One memory per process: an Event's uid names it for its whole life, so every wait may share it.
SIGHTINGS = EventSightings()


class EventsAfter:
    """The Events that happened at or after `since` (seconds since the epoch): stamped then, or new or
    repeated since this object's first look."""

    def __init__(self, since: float) -> None:
        self.since = since
        self._first_look: dict[str, str] | None = None

    def select(self, events: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        marks = {_uid(e): str((e.get("metadata") or {}).get("resourceVersion")) for e in events}
        if self._first_look is None:
            self._first_look = marks
        first_look = self._first_look
        return [e for e in events if event_time(e) >= self.since - 1.0 or first_look.get(_uid(e)) != marks[_uid(e)]]
