"""A container's share of the server's CPU, enforced the way a cgroup's CFS quota is.

Every container program is a task of the server's one event loop, so a script that never sleeps
(`while true; do echo x; done`) would hold the loop and starve every API request. Its runner calls
`CpuQuota.tick()` after each step: every `CPU_SLICE` of CPU it yields to the loop, and once it has used
its quota (`cores` x `CFS_PERIOD`) it is throttled until the period ends, as the kernel throttles a
cgroup over `cpu.cfs_quota_us`. CPU is the thread's own time (`time.thread_time`), counted only while
the container runs, so a busy machine does not make a container look busier than it is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from meshbook.sandbox.config import CFS_PERIOD, CPU_SLICE


class CpuQuota:
    """`cores` seconds of CPU per second at most, measured between `resume()` and each `tick()`."""

    def __init__(
        self,
        cores: float,
        *,
        period: float = CFS_PERIOD,
        cpu_slice: float = CPU_SLICE,
        cpu_clock: Callable[[], float] = time.thread_time,
        wall_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.quota = cores * period
        self.period = period
        self.cpu_slice = cpu_slice
        self._cpu_clock = cpu_clock
        self._wall_clock = wall_clock
        self._period_end = wall_clock() + period
        self._used = 0.0
        self._mark = cpu_clock()
        self.throttled = 0  # periods in which the container was throttled (cpu.stat's nr_throttled)

    def resume(self) -> None:
        """The container runs again after waiting (a sleep): what passed meanwhile is not its CPU."""
        self._mark = self._cpu_clock()

    async def tick(self) -> None:
        """Charge the CPU used since the last mark; yield to the loop every slice, sleep when over quota."""
        ran = self._cpu_clock() - self._mark
        if ran < self.cpu_slice:
            return
        now = self._wall_clock()
        if now >= self._period_end:
            self._period_end, self._used = now + self.period, 0.0
        self._used += ran
        if self._used >= self.quota:
            self.throttled += 1
            await asyncio.sleep(self._period_end - now)
            self._period_end, self._used = self._wall_clock() + self.period, 0.0
        else:
            await asyncio.sleep(0)
        self._mark = self._cpu_clock()
