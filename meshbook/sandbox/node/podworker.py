"""One pod's life on the sandbox node: volumes, init containers, containers, restarts, deletion.

This module runs containers and keeps their records; `status.py` turns the records into the pod status
the kubelet reports, which `PodWorker.publish` writes after every change.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from meshbook.param_enums import SandboxSpeed
from meshbook.sandbox.apiserver import events
from meshbook.sandbox.apiserver.verbs import ApiCore
from meshbook.sandbox.clock import current as current_clock
from meshbook.sandbox.config import ContainerLogPolicy, delays
from meshbook.sandbox.node.backoff import ContainerBackOff
from meshbook.sandbox.node.containers import ContainerContext, ContainerLog, ContainerProgram, EnvError, resolve_env
from meshbook.sandbox.node.logfiles import pod_log_dir, remove_pod_logs
from meshbook.sandbox.node.services import NodeServices
from meshbook.sandbox.node.status import ContainerRun, pod_status, stored_container_status
from meshbook.sandbox.storage.resources import ResourceType
from meshbook.sandbox.storage.store import now_rfc3339


class Node(Protocol):
    """What a pod worker needs of its node: the API, the clock, programs and a wake-up on volume changes."""

    core: ApiCore
    speed: SandboxSpeed
    pods_rt: ResourceType
    services: NodeServices
    pods_dir: Path  # the node's /var/log/pods
    log_policy: ContainerLogPolicy

    def program_for(self, pod: Mapping[str, Any], container: Mapping[str, Any], is_init: bool) -> ContainerProgram: ...

    async def wait_for_change(self, namespace: str) -> None: ...


log = logging.getLogger(__name__)

GRACE_SECONDS = 30.0  # like terminationGracePeriodSeconds: programs get this long to stop by themselves


class PodWorker:
    def __init__(self, node: Node, pod: dict[str, Any]) -> None:
        self.kubelet = node
        self.pod = pod
        self.uid = pod["metadata"]["uid"]
        self.namespace = pod["metadata"]["namespace"]
        self.name = pod["metadata"]["name"]
        spec = pod["spec"]
        self.init_runs = [
            ContainerRun(c, "sidecar" if c.get("restartPolicy") == "Always" else "init")
            for c in spec.get("initContainers") or []
        ]
        self.main_runs = [ContainerRun(c, "main") for c in spec.get("containers") or []]
        for run in self.init_runs + self.main_runs:
            previous = stored_container_status(pod, run.name)
            if previous:
                run.restart_count = previous.get("restartCount", 0)
        self.initialized = not self.init_runs
        self.mounted = False  # volumes in place: the pod sandbox can start containers
        self.stopping = asyncio.Event()
        self.deleting = False
        self.task: asyncio.Task[None] | None = None
        self.delete_task: asyncio.Task[None] | None = None
        self.container_tasks: list[asyncio.Task[None]] = []
        self.ports: dict[int, tuple[str, int]] = {}
        self.contexts: dict[str, ContainerContext] = {}  # each container's latest run, for exec and attach
        self.failed = False
        self.start_time = pod.get("status", {}).get("startTime") or now_rfc3339()

    # -- control -------------------------------------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        self.stopping.set()
        for task in self.container_tasks:
            task.cancel()
        if self.task is not None:
            self.task.cancel()

    def request_delete(self) -> None:
        if not self.deleting:
            self.deleting = True
            self.delete_task = asyncio.ensure_future(self._delete())

    async def _delete(self) -> None:
        events.record(
            self.kubelet.core,
            self.pod,
            "Normal",
            "Killing",
            f"Stopping container {self.main_runs[0].name}" if self.main_runs else "Stopping pod",
        )
        self.stopping.set()  # programs see it and stop (OpenBao shuts down) within the grace period
        running = [t for t in [*self.container_tasks, self.task] if t is not None and not t.done()]
        if running:
            _, pending = await asyncio.wait(running, timeout=GRACE_SECONDS)
            for task in pending:
                task.cancel()
        await asyncio.sleep(delays(self.kubelet.speed).terminate)
        rt = self.kubelet.pods_rt
        assert rt is not None
        live = self.kubelet.core.store.get(rt, self.namespace, self.name)
        if live is not None and live["metadata"]["uid"] == self.uid:
            self.kubelet.core.finish_delete(rt, live)

    def remove_logs(self) -> None:
        """The pod is gone: its log files go too, as the kubelet removes /var/log/pods/<pod>."""
        for run in self.init_runs + self.main_runs:
            for log in (run.log, run.previous_log):
                if log is not None:
                    log.remove()
        remove_pod_logs(pod_log_dir(self.kubelet.pods_dir, self.pod))

    def log_of(self, container: str, previous: bool) -> ContainerLog | None:
        for run in self.init_runs + self.main_runs:
            if run.name == container:
                return run.previous_log if previous else run.log
        return None

    def backing_address(self, port: int) -> tuple[str, int] | None:
        return self.ports.get(port)

    def running_context(self, container: str) -> ContainerContext | None:
        """The context of `container` while it runs (what exec and attach reach), else None."""
        run = next((r for r in self.init_runs + self.main_runs if r.name == container), None)
        if run is None or run.state != "running" or self.stopping.is_set():
            return None
        return self.contexts.get(container)

    # -- life ----------------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            self._mark_all_waiting("ContainerCreating" if not self.init_runs else "PodInitializing")
            self.publish()
            await asyncio.sleep(delays(self.kubelet.speed).mount)
            while (missing := self._missing_volume()) is not None:
                self._mark_all_waiting("ContainerCreating")
                self.publish()
                events.record(self.kubelet.core, self.pod, "Warning", "FailedMount", missing)
                await self.kubelet.wait_for_change(self.namespace)
            self.mounted = True
            for run in self.init_runs:
                if run.kind == "sidecar":
                    self.container_tasks.append(asyncio.ensure_future(self._supervise(run)))
                    while not run.ready:
                        await self._wait_change()
                    continue
                if not await self._run_init(run):
                    return
            self.initialized = True
            for run in self.main_runs:
                self.container_tasks.append(asyncio.ensure_future(self._supervise(run)))
            self.publish()
            await self.stopping.wait()
        except asyncio.CancelledError:
            pass
        except Exception:  # a bug in a program must not kill the kubelet
            log.exception("pod %s/%s worker failed", self.namespace, self.name)

    async def _wait_change(self) -> None:
        self._changed = asyncio.Event()
        await self._changed.wait()

    def _notify(self) -> None:
        changed = getattr(self, "_changed", None)
        if changed is not None:
            changed.set()

    def _missing_volume(self) -> str | None:
        store = self.kubelet.core.store
        registry = self.kubelet.core.registry
        for volume in self.pod["spec"].get("volumes") or []:
            refs: list[tuple[str, str, bool]] = []
            if "secret" in volume:
                refs.append(
                    (
                        "secrets",
                        volume["secret"].get("secretName", ""),
                        bool(volume["secret"].get("optional")),
                    )
                )
            if "configMap" in volume:
                refs.append(
                    (
                        "configmaps",
                        volume["configMap"].get("name", ""),
                        bool(volume["configMap"].get("optional")),
                    )
                )
            for source in (volume.get("projected") or {}).get("sources") or []:
                if "secret" in source:
                    refs.append(("secrets", source["secret"].get("name", ""), bool(source["secret"].get("optional"))))
                if "configMap" in source:
                    refs.append(
                        (
                            "configmaps",
                            source["configMap"].get("name", ""),
                            bool(source["configMap"].get("optional")),
                        )
                    )
            for plural, name, optional in refs:
                rt = registry.lookup("", "v1", plural)
                assert rt is not None
                if not optional and store.get(rt, self.namespace, name) is None:
                    kind = "secret" if plural == "secrets" else "configmap"
                    return f'MountVolume.SetUp failed for volume "{volume["name"]}" : {kind} "{name}" not found'
        return None

    def _mark_all_waiting(self, reason: str) -> None:
        for run in self.init_runs:
            if run.state == "waiting":
                run.reason = "PodInitializing"  # what the kubelet reports for init containers not yet started
        for run in self.main_runs:
            if run.state == "waiting":
                run.reason = "PodInitializing" if self.init_runs else reason

    async def _start(self, run: ContainerRun) -> ContainerContext | None:
        speed = self.kubelet.speed
        await asyncio.sleep(delays(speed).pull + delays(speed).start)
        lookup = self._lookup
        try:
            env = resolve_env(self.pod, run.spec, lookup)
        except EnvError as exc:
            run.state, run.reason, run.message = "waiting", "CreateContainerConfigError", str(exc)
            self.publish()
            events.record(self.kubelet.core, self.pod, "Warning", "Failed", f"Error: {exc}")
            return None
        if run.log is not None:  # the kubelet keeps the logs of this run and the one before only
            if run.previous_log is not None:
                run.previous_log.remove()
            run.previous_log = run.log
        directory = pod_log_dir(self.kubelet.pods_dir, self.pod) / run.name
        run.log = ContainerLog(directory / f"{run.restart_count}.log", self.kubelet.log_policy)
        run.state, run.reason, run.message = "running", "", None
        run.started_at = now_rfc3339()
        run.container_id = (
            "containerd://" + hashlib.sha256(f"{self.uid}/{run.name}/{run.restart_count}".encode()).hexdigest()
        )
        run.ready = False
        self.publish()
        events.record(self.kubelet.core, self.pod, "Normal", "Started", f"Started container {run.name}")

        def mark_ready(ready: bool) -> None:
            if run.ready != ready and run.state == "running":
                run.ready = ready
                self.publish()
                self._notify()

        def listen(port: int, host: str, real_port: int) -> None:
            self.ports[port] = (host, real_port)

        self.contexts[run.name] = ContainerContext(
            pod=self.pod,
            container=run.spec,
            is_init=run.kind == "init",
            env=env,
            log=run.log,
            speed=speed,
            stopping=self.stopping,
            mark_ready=mark_ready,
            listen=listen,
            services=self.kubelet.services,
        )
        return self.contexts[run.name]

    def _lookup(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        rt = self.kubelet.core.registry.lookup("", "v1", "secrets" if kind == "Secret" else "configmaps")
        assert rt is not None
        return self.kubelet.core.store.get(rt, namespace, name)

    async def _execute(self, run: ContainerRun, ctx: ContainerContext) -> int:
        program = self.kubelet.program_for(self.pod, run.spec, run.kind == "init")
        if run.kind != "init" and not program.manages_readiness:
            asyncio.get_running_loop().call_later(delays(self.kubelet.speed).ready, ctx.mark_ready, True)
        try:
            code = await program.run(ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the program's own failure is the container's failure
            log.exception("program of %s/%s %s failed", self.namespace, self.name, run.name)
            ctx.log.write(f"sandbox: container program failed: {type(exc).__name__}")
            code = 1
        self._terminated(run, code, ctx.termination_reason)
        return code

    def _terminated(self, run: ContainerRun, code: int, reason: str = "") -> None:
        run.state = "terminated"
        run.exit_code = code
        run.reason = reason or ("Completed" if code == 0 else "Error")
        run.finished_at = now_rfc3339()
        run.ready = False
        if run.log is not None:
            run.log.close()
        self.publish()

    async def _run_init(self, run: ContainerRun) -> bool:
        backoff = ContainerBackOff.of(delays(self.kubelet.speed))
        policy = self.pod["spec"].get("restartPolicy", "Always")
        while not self.stopping.is_set():
            ctx = await self._start(run)
            if ctx is None:
                await self.kubelet.wait_for_change(self.namespace)
                continue
            code = await self._execute(run, ctx)
            if code == 0:
                return True
            if policy == "Never":
                self.failed = True
                self.publish()
                return False
            await self._back_off(run, backoff)
        return False

    async def _supervise(self, run: ContainerRun) -> None:
        backoff = ContainerBackOff.of(delays(self.kubelet.speed))
        policy = "Always" if run.kind == "sidecar" else self.pod["spec"].get("restartPolicy", "Always")
        try:
            while not self.stopping.is_set():
                ctx = await self._start(run)
                if ctx is None:
                    await self.kubelet.wait_for_change(self.namespace)
                    continue
                code = await self._execute(run, ctx)
                if self.stopping.is_set() or policy == "Never" or (policy == "OnFailure" and code == 0):
                    return
                await self._back_off(run, backoff)
        except asyncio.CancelledError:
            pass

    async def _back_off(self, run: ContainerRun, backoff: ContainerBackOff) -> None:
        """Between a crash and the restart: at once after a first crash, else CrashLoopBackOff for the
        back-off's delay (cluster time: simulated at `instant` speed). restartCount counts restarts done."""
        run.last_state = run.status()["state"]
        clock = current_clock()
        wait = backoff.after_crash(clock.time())
        if wait > 0:
            run.state, run.reason = "waiting", "CrashLoopBackOff"
            run.message = (
                f"back-off {_human(wait)} restarting failed container={run.name} "
                f"pod={self.name}_{self.namespace}({self.uid})"
            )
            self.publish()
            events.record(self.kubelet.core, self.pod, "Warning", "BackOff", "Back-off restarting failed container")
            if await clock.sleep(wait, until=self.stopping):
                return
        run.restart_count += 1

    # -- status --------------------------------------------------------------------------------------

    def publish(self) -> None:
        """Write the pod's status as the kubelet computes it, if it changed."""
        rt = self.kubelet.pods_rt
        assert rt is not None
        store = self.kubelet.core.store
        live = store.get(rt, self.namespace, self.name)
        if live is None or live["metadata"]["uid"] != self.uid:
            return
        status = pod_status(
            live.get("status", {}),
            uid=self.uid,
            restart_policy=self.pod["spec"].get("restartPolicy"),
            init_runs=self.init_runs,
            main_runs=self.main_runs,
            mounted=self.mounted,
            initialized=self.initialized,
            failed=self.failed,
            start_time=self.start_time,
        )
        if status == live.get("status"):
            return
        updated = copy.copy(live)
        updated["metadata"] = copy.deepcopy(live["metadata"])
        updated["status"] = status
        self.pod = store.update(rt, updated)


def _human(seconds: float) -> str:
    if seconds >= 60:
        return f"{int(seconds // 60)}m{int(seconds % 60)}s"
    return f"{seconds:g}s"
