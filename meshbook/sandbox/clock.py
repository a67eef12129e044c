"""The sandbox's one clock: the wall clock plus the simulated seconds that `instant` speed skipped.

Why: the kubelet backs a crash-looping container off 10 s, 20 s, 40 s ... 5 min. Waiting that long
makes tests and runs slow; waiting a fraction of it in wall time (the old `instant` table) gave pods with
hundreds of restarts a few minutes after they were created, which no cluster shows and which misleads
whoever reads the evidence. So waits that stand for cluster time are simulated: at `instant` speed,
`sleep(N)` waits N * `scale` real seconds and then moves the clock forward until it reaches the
sleeper's target (a discrete-event clock: two pods backing off together move it once, and a target the
clock already passed moves it not at all). Objects are stamped with this clock (`now`), so restart
counts, `startedAt`/`finishedAt` and ages agree with the kubelet's schedule. At `realistic` speed the
clock is the wall clock and `sleep` is `asyncio.sleep`.

What a client sees: clients compare timestamps with their own wall clocks (kubectl prints `<invalid>`
for an age in the future; the Python client and OpenBao check times too), so the simulated present is
never served. Instead the past is served shifted: a stored time is served `skipped` seconds earlier
(`served`), and a time a client sends is stored `skipped` seconds later (`stored`); `http/served_time.py`
applies this to every object on the wire from one list of timestamp fields. "Now" as a client sees it
stays its wall clock, and everything before it looks exactly as old as the simulation says. Times that
other software verifies with its own clock (service-account JWTs, certificates, OpenBao) are wall
time and never pass through here. The skipped seconds are whole seconds (timestamps have one-second
precision, so shifting them is exact and a read-modify-write round trip changes nothing), and they are
kept in the state directory, so a restarted sandbox serves the same past.

What is simulated: the waits that stand for the cluster's own schedule (the kubelet's back-off, the
Job controller's). A program's own `sleep` in a container stays a scaled real wait
(`config.script_sleep`): a container polling every second would otherwise push the clock ahead by
minutes per real second, and every object would look hours old after a short run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

CLOCK_FILE = "clock.json"  # in the state directory: the seconds skipped so far


class SandboxClock:
    """Wall time plus `skipped` seconds; `scale` None means waits are real (realistic speed)."""

    def __init__(
        self,
        scale: float | None = None,
        skipped: int = 0,
        wall: Callable[[], float] = time.time,
        on_skip: Callable[[int], None] | None = None,
    ) -> None:
        self.scale = scale
        self.skipped = skipped
        self._wall = wall
        self._on_skip = on_skip

    def time(self) -> float:
        """Seconds since the epoch on the sandbox's clock."""
        return self._wall() + self.skipped

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def advance_to(self, target: float) -> None:
        """Move the clock forward to `target` if it is not there yet (never backwards)."""
        needed = math.ceil(target - self._wall())
        if needed > self.skipped:
            self.skipped = needed
            if self._on_skip is not None:
                self._on_skip(needed)

    async def sleep(self, seconds: float, until: asyncio.Event | None = None) -> bool:
        """Wait `seconds` of cluster time (False), or less if `until` is set first (True: the clock then
        stays where the wall clock brought it)."""
        target = self.time() + seconds
        real = seconds if self.scale is None else seconds * self.scale
        if until is None:
            await asyncio.sleep(real)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(until.wait(), timeout=real)
            if until.is_set():
                return True
        if self.scale is not None:
            self.advance_to(target)
        return False

    def served(self, stored: datetime) -> datetime:
        """A stored time as clients see it: as far before their wall clock as it is before this clock."""
        return stored - timedelta(seconds=self.skipped)

    def stored(self, served: datetime) -> datetime:
        """A time a client sent (on its wall clock) as this clock's time."""
        return served + timedelta(seconds=self.skipped)


_current = SandboxClock()


def current() -> SandboxClock:
    """The process's clock: the wall clock until the server installs the one for its speed."""
    return _current


def install(clock: SandboxClock) -> None:
    global _current
    _current = clock


def for_state(state_dir: Path, scale: float | None) -> SandboxClock:
    """The clock of a sandbox's state directory: the seconds it skipped before are kept in `clock.json`
    (its stored objects are stamped with them) and every new skip is written there before it is used."""
    path = state_dir / CLOCK_FILE
    skipped = 0
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        skipped = max(0, int(json.loads(path.read_text())["skippedSeconds"]))

    def keep(seconds: int) -> None:
        tmp = path.with_name(CLOCK_FILE + ".tmp")
        with contextlib.suppress(OSError):  # a full disk must not stop the kubelet; memory still has it
            tmp.write_text(json.dumps({"skippedSeconds": seconds}))
            tmp.replace(path)

    return SandboxClock(scale, skipped, on_skip=keep)
