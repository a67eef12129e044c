"""The sandbox clock (simulated cluster time at instant speed), the kubelet's back-off schedule, and the
conversion of objects' times on the wire."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from meshbook.params import SandboxSpeed
from meshbook.sandbox.clock import CLOCK_FILE, SandboxClock, for_state
from meshbook.sandbox.config import delays
from meshbook.sandbox.http.served_time import served_body, stored_body
from meshbook.sandbox.node.backoff import ContainerBackOff

WALL = 1_700_000_000.0  # a fixed wall clock: what the clock adds is all there is to see


def fixed_wall() -> float:
    return WALL


# -- the clock ---------------------------------------------------------------------------------------


def test_realistic_speed_is_wall_time_and_skips_nothing() -> None:
    assert delays(SandboxSpeed.REALISTIC).clock_scale is None
    clock = SandboxClock(scale=None, wall=fixed_wall)
    assert asyncio.run(clock.sleep(0.01)) is False
    assert clock.skipped == 0 and clock.time() == WALL


def test_a_target_already_passed_never_moves_the_clock_back() -> None:
    clock = SandboxClock(scale=0.0001, skipped=50, wall=fixed_wall)
    clock.advance_to(WALL + 10)
    assert clock.skipped == 50
    clock.advance_to(WALL + 60.2)
    assert clock.skipped == 61  # whole seconds, rounded up so the sleeper's target is reached


def test_an_interrupted_sleep_skips_nothing() -> None:
    clock = SandboxClock(scale=0.0001, wall=fixed_wall)

    async def interrupted() -> bool:
        stop = asyncio.Event()
        stop.set()
        return await clock.sleep(300, until=stop)

    assert asyncio.run(interrupted()) is True
    assert clock.skipped == 0


def test_instant_sleep_takes_a_fraction_and_skips_the_simulated_seconds() -> None:
    assert delays(SandboxSpeed.INSTANT).clock_scale == 0.005
    clock = SandboxClock(scale=0.0001, wall=fixed_wall)
    assert asyncio.run(clock.sleep(10)) is False
    assert clock.skipped == 10 and clock.time() == WALL + 10


def test_sleepers_at_once_move_the_clock_once_to_the_latest_target() -> None:
    clock = SandboxClock(scale=0.0001, wall=fixed_wall)

    async def together() -> None:
        await asyncio.gather(clock.sleep(10), clock.sleep(10), clock.sleep(40))

    asyncio.run(together())
    assert clock.skipped == 40  # not 60: a discrete-event clock


def test_the_skipped_seconds_survive_a_restart_of_the_sandbox(tmp_path: Path) -> None:
    assert for_state(tmp_path, 0.0001).skipped == 0  # nothing kept yet
    (tmp_path / CLOCK_FILE).write_text("not json")
    assert for_state(tmp_path, 0.0001).skipped == 0  # unreadable: start from the wall clock
    first = for_state(tmp_path, 0.0001)
    first.advance_to(first.time() + 120)
    assert json.loads((tmp_path / CLOCK_FILE).read_text())["skippedSeconds"] == first.skipped >= 120
    assert for_state(tmp_path, 0.0001).skipped == first.skipped


# -- the kubelet's back-off --------------------------------------------------------------------------


def test_back_off_restarts_at_once_then_doubles_from_10s_to_the_5min_cap() -> None:
    backoff = ContainerBackOff.of(delays(SandboxSpeed.INSTANT))
    finished, waits = 0.0, []
    for _ in range(9):
        wait = backoff.after_crash(finished)
        waits.append(wait)
        finished += wait + 1  # each run lasts a second
    assert waits == [0, 10, 20, 40, 80, 160, 300, 300, 300]
    assert ContainerBackOff.of(delays(SandboxSpeed.REALISTIC)) == ContainerBackOff.of(delays(SandboxSpeed.INSTANT))


def test_back_off_is_kept_while_the_container_ran_less_than_10_minutes() -> None:
    backoff = ContainerBackOff(10, 300, 600)
    backoff.after_crash(0)
    assert backoff.after_crash(600) == 10  # exactly twice the cap since the last crash: not forgotten
    assert backoff.after_crash(1200) == 20


def test_back_off_resets_after_the_container_ran_10_minutes() -> None:
    backoff = ContainerBackOff(10, 300, 600)
    for finished in (0, 1, 12, 33):
        backoff.after_crash(finished)
    assert backoff.delay == 80
    assert backoff.after_crash(33 + 601) == 0  # forgotten: restarted at once, as after a first crash
    assert backoff.after_crash(33 + 602) == 10


# -- times on the wire -------------------------------------------------------------------------------


def pod() -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "creationTimestamp": "2024-05-01T12:00:00Z",
            "labels": {"creationTimestamp": "2024-05-01T12:00:00Z"},
            "managedFields": [{"manager": "kubectl", "time": "2024-05-01T12:00:00Z"}],
        },
        "spec": {"containers": [{"name": "app"}]},
        "status": {
            "startTime": "2024-05-01T12:00:01Z",
            "conditions": [{"type": "Ready", "lastTransitionTime": "2024-05-01T12:00:02Z", "lastProbeTime": None}],
            "containerStatuses": [
                {
                    "name": "app",
                    "restartCount": 3,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {
                        "terminated": {"startedAt": "2024-05-01T12:01:10Z", "finishedAt": "2024-05-01T12:01:11Z"}
                    },
                }
            ],
        },
    }


def test_nothing_is_converted_while_nothing_was_skipped() -> None:
    body = pod()
    clock = SandboxClock(scale=0.005, wall=fixed_wall)
    assert served_body(body, clock) is body and stored_body(body, clock) is body


def test_served_times_are_shifted_back_by_the_skipped_seconds_and_nothing_else_changes() -> None:
    stored = pod()
    kept = copy.deepcopy(stored)
    clock = SandboxClock(scale=0.005, skipped=70, wall=fixed_wall)
    served = served_body(stored, clock)
    assert stored == kept  # the stored object is shared: never changed in place
    assert served["metadata"]["creationTimestamp"] == "2024-05-01T11:58:50Z"
    assert served["metadata"]["managedFields"][0]["time"] == "2024-05-01T11:58:50Z"
    assert served["metadata"]["labels"] == kept["metadata"]["labels"]  # a label is not a time
    assert served["status"]["startTime"] == "2024-05-01T11:58:51Z"
    assert served["status"]["conditions"][0] == {"type": "Ready", "lastTransitionTime": "2024-05-01T11:58:52Z",
                                                 "lastProbeTime": None}  # fmt: skip
    last = served["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert last == {"startedAt": "2024-05-01T12:00:00Z", "finishedAt": "2024-05-01T12:00:01Z"}
    assert served["spec"] is stored["spec"]
    assert stored_body(served, clock) == kept  # a round trip changes nothing


def test_lists_tables_and_events_are_converted_in_every_place_they_hold_objects() -> None:
    clock = SandboxClock(scale=0.005, skipped=3600, wall=fixed_wall)
    event = {"kind": "Event", "firstTimestamp": "2024-05-01T12:00:00Z", "lastTimestamp": "2024-05-01T13:00:00Z",
             "eventTime": "2024-05-01T13:00:00.250000Z", "metadata": {"name": "e"}}  # fmt: skip
    served_list = served_body({"kind": "EventList", "items": [event]}, clock)
    assert served_list["items"][0]["firstTimestamp"] == "2024-05-01T11:00:00Z"
    assert served_list["items"][0]["lastTimestamp"] == "2024-05-01T12:00:00Z"
    assert served_list["items"][0]["eventTime"] == "2024-05-01T12:00:00.250000Z"  # MicroTime keeps its fraction
    table = {"kind": "Table", "rows": [{"cells": ["p", "2024-05-01T12:00:00Z"], "object": pod()}]}
    served_table = served_body(table, clock)
    assert served_table["rows"][0]["object"]["metadata"]["creationTimestamp"] == "2024-05-01T11:00:00Z"
    assert served_table["rows"][0]["cells"] == table["rows"][0]["cells"]  # cells are text the server printed


def test_a_time_sent_with_another_zone_is_stored_in_utc() -> None:
    clock = SandboxClock(scale=0.005, skipped=60, wall=fixed_wall)
    sent = {"firstTimestamp": "2024-05-01T14:00:00+02:00"}
    assert stored_body(sent, clock) == {"firstTimestamp": "2024-05-01T12:01:00Z"}


def test_values_that_are_not_times_pass_unchanged() -> None:
    clock = SandboxClock(scale=0.005, skipped=10, wall=fixed_wall)
    body = {"metadata": {"creationTimestamp": "yesterday"}, "status": {"startTime": "2024-05-01T12:00:00"}}
    assert served_body(body, clock) == body  # not RFC 3339 with a zone: validation's business, not ours


@pytest.mark.parametrize("skipped", [1, 86_400])
def test_stored_undoes_served(skipped: int) -> None:
    clock = SandboxClock(scale=0.005, skipped=skipped, wall=fixed_wall)
    assert stored_body(served_body(pod(), clock), clock) == pod()
