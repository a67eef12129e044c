"""What the Bank-Vaults operator's containers print: the operator's own log lines (controller-runtime's JSON),
shared by every running operator container, so a refused API call shows in `kubectl logs`."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from meshbook.sandbox.node.containers import ContainerContext

Key = tuple[str, str]


class OperatorLog:
    """The lines the operator prints (JSON, as controller-runtime logs), shared by its running containers."""

    def __init__(self) -> None:
        self.lines: deque[str] = deque(maxlen=1000)  # the newest lines; a slow reader may miss older ones
        self.written = 0  # lines ever written
        self._changed = asyncio.Event()

    def error(self, msg: str, key: Key, error: str) -> None:
        entry: Mapping[str, Any] = {
            "level": "error",
            "ts": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "msg": msg,
            "controller": "vault",
            "namespace": key[0],
            "name": key[1],
            "error": error,
        }
        self.lines.append(json.dumps(entry))
        self.written += 1
        self._changed.set()

    def since(self, seen: int) -> list[str]:
        """The lines written after the first `seen` (those still kept)."""
        new = min(self.written - seen, len(self.lines))
        return list(self.lines)[len(self.lines) - new :] if new > 0 else []

    async def changed(self) -> None:
        await self._changed.wait()
        self._changed.clear()


class OperatorProgram:
    """The operator's container: prints what the operator logs while it runs."""

    manages_readiness = False

    def __init__(self, log: OperatorLog) -> None:
        self.operator_log = log

    async def run(self, ctx: ContainerContext) -> int:
        shown = self.operator_log.written  # a new container prints only what happens from now on
        while not ctx.stopping.is_set():
            for line in self.operator_log.since(shown):
                ctx.log.write(line)
            shown = self.operator_log.written
            waiter = asyncio.ensure_future(self.operator_log.changed())
            stop = asyncio.ensure_future(ctx.stopping.wait())
            await asyncio.wait({waiter, stop}, return_when=asyncio.FIRST_COMPLETED)
            for task in (waiter, stop):
                task.cancel()
        return 0

    def resolve(self, pod: Mapping[str, Any], container: Mapping[str, Any], is_init: bool) -> OperatorProgram | None:
        """The kubelet's resolver for the operator's image."""
        return self if "vault-operator" in str(container.get("image", "")) and not is_init else None
