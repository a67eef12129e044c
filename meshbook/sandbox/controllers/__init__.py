"""The sandbox's controllers: each reconciles one kind of object towards its spec.

Like kube-controller-manager, each controller reacts to store changes by queueing keys and reconciles
them one at a time; a failed reconcile is retried with back-off. They write through `ApiCore`, so pods
they create pass admission like any other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from meshbook.sandbox.api import ApiCore
from meshbook.sandbox.stages import Speed
from meshbook.sandbox.store import WatchEvent

if TYPE_CHECKING:
    from meshbook.sandbox.kubelet import Kubelet

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)


class Controller:
    """Base: `keys_for(event)` maps a change to keys; `reconcile(key)` does the work."""

    name = "controller"

    def __init__(self, core: ApiCore, speed: Speed) -> None:
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


class ControllerManager:
    def __init__(self, core: ApiCore, kubelet: Kubelet, speed: Speed) -> None:
        from meshbook.sandbox.controllers.endpoints import EndpointsController
        from meshbook.sandbox.controllers.lifecycle import (
            CrdController,
            GarbageCollector,
            NamespaceController,
            PersistentVolumeClaimBinder,
            bootstrap,
        )
        from meshbook.sandbox.controllers.workloads import (
            DaemonSetController,
            DeploymentController,
            ReplicaSetController,
            StatefulSetController,
        )

        self.core = core
        self.kubelet = kubelet
        self._bootstrap = bootstrap
        self.controllers: list[Controller] = [
            NamespaceController(core, speed),
            CrdController(core, speed),
            DeploymentController(core, speed),
            ReplicaSetController(core, speed),
            StatefulSetController(core, speed),
            DaemonSetController(core, speed),
            EndpointsController(core, speed),
            PersistentVolumeClaimBinder(core, speed),
        ]
        self.gc = GarbageCollector(core)
        core.on_delete.append(self.gc.on_delete)

    def add(self, controller: Controller) -> None:
        """Controllers of add-ons (e.g. the Bank-Vaults operator) join before `start`."""
        self.controllers.append(controller)

    async def start(self) -> None:
        await self._bootstrap(self.core)
        self.core.store.add_listener(self._dispatch)
        for controller in self.controllers:
            controller.start()
        await self.kubelet.resume()

    def _dispatch(self, event: WatchEvent) -> None:
        self.kubelet.on_event(event)
        for controller in self.controllers:
            controller.on_event(event)

    async def stop(self) -> None:
        await asyncio.gather(*(c.stop() for c in self.controllers), return_exceptions=True)


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
