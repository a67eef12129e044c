"""The controller base: react to store changes by queueing keys, reconcile one at a time, retry with back-off."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from meshbook.param_enums import SandboxSpeed
from meshbook.sandbox.apiserver.verbs import ApiCore
from meshbook.sandbox.storage.store import WatchEvent

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)


class Controller:
    """Base: `keys_for(event)` maps a change to keys; `reconcile(key)` does the work."""

    name = "controller"

    def __init__(self, core: ApiCore, speed: SandboxSpeed) -> None:
        self.core = core
        self.speed = speed
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._pending: set[Key] = set()
        self._task: asyncio.Task[None] | None = None

    def keys_for(self, event: WatchEvent) -> Iterable[Key]:
        return ()

    async def reconcile(self, key: Key) -> None:
        raise NotImplementedError

    def initial_keys(self) -> Iterable[Key]:
        return ()

    def enqueue(self, key: Key) -> None:
        if key not in self._pending:
            self._pending.add(key)
            self._queue.put_nowait(key)

    def on_event(self, event: WatchEvent) -> None:
        for key in self.keys_for(event):
            self.enqueue(key)

    def start(self) -> None:
        for key in self.initial_keys():
            self.enqueue(key)
        self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        failures: dict[Key, int] = {}
        while True:
            key = await self._queue.get()
            self._pending.discard(key)
            try:
                await self.reconcile(key)
                failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Exception:
                count = failures[key] = failures.get(key, 0) + 1
                log.exception("%s: reconcile of %s failed (%d)", self.name, key, count)
                if count < 10:
                    asyncio.get_running_loop().call_later(0.05 * 2**count, self.enqueue, key)


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_uid(obj: dict[str, Any]) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None
