"""Event ages and "since the wait began" without trusting the server's clock alone: a meshbook sandbox at
instant speed serves a simulated past, where a second-old event can look minutes old."""

from __future__ import annotations

from typing import Any

from meshbook.kube.event_times import EventsAfter, EventSightings, event_time

SINCE = 1_700_000_000.0  # the moment a wait began
LONG_AGO = "2023-11-14T22:00:00Z"  # about 13 minutes before SINCE
AFTER = "2023-11-14T22:13:25Z"  # a few seconds after SINCE


def event(uid: str, rv: str, stamp: str, count: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"uid": uid, "resourceVersion": rv},
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": count,
    }


def test_an_event_that_looks_old_has_lasted_only_since_it_was_first_seen() -> None:
    now = [SINCE]
    sightings = EventSightings(clock=lambda: now[0])
    shifted = event("a", "1", LONG_AGO)
    assert sightings.lasted(shifted) == 0.0  # not 13 minutes: we have only just seen it
    now[0] += 29
    assert sightings.lasted(shifted) == 29.0
    now[0] += 2
    assert sightings.lasted(shifted) == 31.0


def test_an_event_stamped_after_it_was_first_seen_counts_from_its_stamp() -> None:
    sightings = EventSightings(clock=lambda: SINCE)
    ahead = event("b", "1", AFTER)  # a server clock ahead of ours
    assert sightings.lasted(ahead) < 0


def test_old_unchanged_events_are_not_after_the_moment() -> None:
    after = EventsAfter(SINCE)
    stale = event("old", "5", LONG_AGO)
    assert after.select([stale]) == []
    assert after.select([stale]) == []  # still the same object: still stale


def test_events_stamped_after_or_changed_since_the_first_look_are_after_the_moment() -> None:
    after = EventsAfter(SINCE)
    stale, fresh = event("old", "5", LONG_AGO), event("new", "6", AFTER)
    assert after.select([stale, fresh]) == [fresh]
    repeated = event("old", "9", LONG_AGO, count=2)  # repeated: its time served shifted, its version new
    appeared = event("other", "10", LONG_AGO)
    assert after.select([repeated, appeared]) == [repeated, appeared]


def test_event_time_reads_the_first_field_set() -> None:
    assert event_time({"lastTimestamp": None, "eventTime": "2023-11-14T22:13:20.000000Z"}) == SINCE
    assert event_time({"firstTimestamp": "not a time"}) == 0.0
    assert event_time({}) == 0.0
