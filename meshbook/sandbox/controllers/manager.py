"""The controller manager: the built-in controllers, started after bootstrap, fed every store change."""

from __future__ import annotations

import asyncio

from meshbook.param_enums import SandboxSpeed
from meshbook.sandbox.apiserver.verbs import ApiCore
from meshbook.sandbox.controllers.apiservices import APIServiceController
from meshbook.sandbox.controllers.base import Controller
from meshbook.sandbox.controllers.endpoints import EndpointsController
from meshbook.sandbox.controllers.jobs import JobController
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
    ReplicationControllerController,
    StatefulSetController,
)
from meshbook.sandbox.node.kubelet import Kubelet
from meshbook.sandbox.storage.store import WatchEvent


class ControllerManager:
    def __init__(self, core: ApiCore, kubelet: Kubelet, speed: SandboxSpeed) -> None:
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
            ReplicationControllerController(core, speed),
            JobController(core, speed),
            APIServiceController(core, speed),
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
