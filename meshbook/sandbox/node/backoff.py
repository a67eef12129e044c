"""The kubelet's back-off for restarting one container (its `flowcontrol.Backoff`, keyed by container).

Why the first restart is immediate: the kubelet decides at each crash, from the time the container
finished. With no back-off entry (or one last used more than `reset_after` ago: twice the cap, 10 min,
so the container ran that long without failing) it starts a fresh entry at the initial delay and
restarts at once. Otherwise the container waits the entry's delay (CrashLoopBackOff) and the entry
doubles, up to the cap. So restarts come at 0 s, 10 s, 20 s, 40 s ... 300 s after each crash, and the
fourth restart implies the pod is at least 10 + 20 + 40 s old. Times are the sandbox clock's
(`clock.py`): at `instant` speed the waits are simulated.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshbook.sandbox.config import Delays


@dataclass
class ContainerBackOff:
    initial: float
    cap: float
    reset_after: float
    delay: float = 0.0  # the entry's current back-off
    last_update: float | None = None  # when the entry was last used (a crash's finish time)

    @classmethod
    def of(cls, delays: Delays) -> ContainerBackOff:
        return cls(delays.backoff, delays.backoff_cap, delays.backoff_reset)

    def after_crash(self, finished: float) -> float:
        """Seconds to wait before restarting a container that finished at `finished` (0: restart now)."""
        if self.last_update is None or finished - self.last_update > self.reset_after:
            self.delay, self.last_update = self.initial, finished
            return 0.0
        wait = self.delay
        self.delay, self.last_update = min(self.delay * 2, self.cap), finished
        return wait
