"""The kubelet stand-in: schedules pods on the one sandbox node and runs their containers.

Init containers run one by one (a restartable init container, i.e. a native sidecar, starts and must
be ready before the next one), then all containers; exits restart per `restartPolicy` with a doubling
back-off (CrashLoopBackOff); missing Secret/ConfigMap volumes hold the pod in ContainerCreating with a
FailedMount event until they appear. Delays come from `config.delays`; pod status is written back to the
store after every change, so kubectl and watches see each step.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from meshbook.param_enums import SandboxSpeed
from meshbook.sandbox.apiserver import events
from meshbook.sandbox.apiserver.serviceaccounts import TokenService
from meshbook.sandbox.apiserver.verbs import ApiCore
from meshbook.sandbox.config import NODE_NAME, container_log_policy, delays
from meshbook.sandbox.node.containers import ContainerLog, ContainerProgram, ProgramResolver, default_program
from meshbook.sandbox.node.exec import AttachSession, ExecProgramResolver, ExecSession, Send, Session
from meshbook.sandbox.node.logfiles import pod_log_dir, remove_pod_logs
from meshbook.sandbox.node.logs import serve_log
from meshbook.sandbox.node.podworker import PodWorker
from meshbook.sandbox.node.portforward_spdy import handle_portforward_request
from meshbook.sandbox.node.remotecommand import is_websocket, parse_exec_options, serve_websocket
from meshbook.sandbox.node.remotecommand_spdy import serve_spdy
from meshbook.sandbox.node.services import NodeServices
from meshbook.sandbox.node.spdy_http import spdy_request_kind
from meshbook.sandbox.storage.store import Object, StoreError, WatchEvent, now_rfc3339

log = logging.getLogger(__name__)


class Kubelet:
    def __init__(self, core: ApiCore, state_dir: Path, speed: SandboxSpeed, tokens: TokenService) -> None:
        self.core = core
        self.state_dir = state_dir
        self.speed = speed
        self.workers: dict[str, PodWorker] = {}  # by pod uid
        self.resolvers: list[ProgramResolver] = []
        self.exec_programs: list[ExecProgramResolver] = []  # programs `kubectl exec` finds besides the shell
        self.services = NodeServices(core, state_dir, tokens, network=self)
        self.pods_dir = state_dir / "pods"  # container logs, laid out as the kubelet's /var/log/pods
        self.log_policy = container_log_policy(state_dir)
        self._changes: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        pods_rt = core.registry.lookup("", "v1", "pods")
        assert pods_rt is not None
        self.pods_rt = pods_rt

    # -- wiring --------------------------------------------------------------------------------------

    def program_for(self, pod: Mapping[str, Any], container: Mapping[str, Any], is_init: bool) -> ContainerProgram:
        for resolver in self.resolvers:
            program = resolver(pod, container, is_init)
            if program is not None:
                return program
        return default_program(pod, container, is_init)

    def on_event(self, event: WatchEvent) -> None:
        """Store listener: schedule new pods, start/stop workers, wake pods waiting on volumes."""
        if event.rt_key in ("/secrets", "/configmaps", "/serviceaccounts"):
            ns = event.object["metadata"].get("namespace", "")
            self.changed(ns)
            return
        if event.rt_key != "/pods":
            return
        pod = event.object
        uid = pod["metadata"]["uid"]
        if event.type == "DELETED":
            for key in [k for k in self.services.empty_dirs if k[0] == uid]:
                del self.services.empty_dirs[key]  # a pod's emptyDirs go with it
            worker = self.workers.pop(uid, None)
            if worker is not None:
                worker.stop()
                worker.remove_logs()
            return
        if not pod.get("spec", {}).get("nodeName"):
            if uid not in self.workers:
                self._spawn(self._schedule(pod))
            return
        worker = self.workers.get(uid)
        if worker is None and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
            worker = PodWorker(self, pod)
            self.workers[uid] = worker
            worker.start()
        if worker is not None and pod["metadata"].get("deletionTimestamp"):
            worker.request_delete()

    def changed(self, namespace: str) -> None:
        event = self._changes.pop(namespace, None)
        if event is not None:
            event.set()

    async def wait_for_change(self, namespace: str) -> None:
        """Wait until a Secret, ConfigMap or ServiceAccount in `namespace` changes."""
        event = self._changes.setdefault(namespace, asyncio.Event())
        await event.wait()

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def resume(self) -> None:
        """After a restart of the sandbox, bring every stored pod back to life (like a node reboot)."""
        pods = list(self.core.store.list(self.pods_rt))
        kept = {pod_log_dir(self.pods_dir, pod) for pod in pods}
        for directory in self.pods_dir.glob("*") if self.pods_dir.is_dir() else ():
            if directory not in kept:
                remove_pod_logs(directory)  # the logs of pods deleted while the server was down
        for pod in pods:
            self.on_event(WatchEvent("MODIFIED", "/pods", pod, pod, 0))

    async def stop(self) -> None:
        for worker in list(self.workers.values()):
            worker.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*[w.task for w in self.workers.values() if w.task], *self._tasks, return_exceptions=True)
        self.workers.clear()

    # -- scheduling ----------------------------------------------------------------------------------

    async def _schedule(self, pod: Object) -> None:
        await asyncio.sleep(delays(self.speed).schedule)
        meta = pod["metadata"]
        live = self.core.store.get(self.pods_rt, meta["namespace"], meta["name"])
        if live is None or live["metadata"]["uid"] != meta["uid"] or live["spec"].get("nodeName"):
            return
        if live["metadata"].get("deletionTimestamp"):
            self.core.finish_delete(self.pods_rt, live)
            return
        updated = copy.deepcopy(live)
        updated["spec"]["nodeName"] = NODE_NAME
        now = now_rfc3339()
        status = updated.setdefault("status", {})
        status["conditions"] = [
            {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
        ]
        self.core.store.update(self.pods_rt, updated)
        events.record(
            self.core,
            updated,
            "Normal",
            "Scheduled",
            f"Successfully assigned {meta['namespace']}/{meta['name']} to {NODE_NAME}",
            "default-scheduler",
        )

    # -- pods/log and pods/portforward ---------------------------------------------------------------

    def backing_address(self, pod_uid: str, port: int) -> tuple[str, int] | None:
        worker = self.workers.get(pod_uid)
        return worker.backing_address(port) if worker else None

    def _worker_of(self, pod: Object) -> PodWorker | None:
        return self.workers.get(pod["metadata"]["uid"])

    async def serve_log(self, request: web.Request, pod: Object) -> web.StreamResponse:
        name = pod["metadata"]["name"]
        container = choose_container(pod, request.query.get("container"))
        worker = self._worker_of(pod)
        previous = request.query.get("previous", "false") not in ("false", "0")
        source: ContainerLog | None = worker.log_of(container, previous) if worker else None
        if source is None:
            if previous:
                raise StoreError(
                    "BadRequest",
                    400,
                    f'previous terminated container "{container}" in pod "{name}" not found',
                )
            raise StoreError(
                "BadRequest",
                400,
                f'container "{container}" in pod "{name}" is waiting to start: {_waiting_reason(pod, container)}',
            )
        return await serve_log(request, source)

    async def serve_portforward(self, request: web.Request, pod: Object) -> web.StreamResponse:
        worker = self._worker_of(pod)

        async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
            target = worker.backing_address(port) if worker else None
            if target is None:
                return None
            try:
                return await asyncio.open_connection(*target)
            except OSError:
                return None

        return await handle_portforward_request(request, connect)

    async def serve_remotecommand(self, request: web.Request, pod: Object, subresource: str) -> web.StreamResponse:
        """`pods/exec` and `pods/attach`: the API server's checks, the kubelet's, then either transport.

        The kubelet's refusals are plain text, which kubectl shows after `unable to upgrade
        connection: `: no stream asked for (400), the container not running (500).
        """
        container = choose_container(pod, request.query.get("container"))
        if not pod.get("spec", {}).get("nodeName"):
            raise StoreError("BadRequest", 400, f"pod {pod['metadata']['name']} does not have a host assigned")
        if not is_websocket(request) and spdy_request_kind(request) is None:
            raise StoreError("BadRequest", 400, "Upgrade request required")  # the API server's proxy
        attach = subresource == "attach"
        try:
            options = parse_exec_options(request.query, attach)
        except ValueError as exc:
            return web.Response(status=400, text=str(exc))
        worker = self._worker_of(pod)
        ctx = worker.running_context(container) if worker else None
        if ctx is None:
            return web.Response(status=500, text=f'container not found ("{container}")')
        if attach:  # a process's terminal cannot change once it runs: attach gets the container's
            options = dataclasses.replace(options, tty=bool(ctx.container.get("tty")))
        running = ctx

        def make_session(send: Send) -> Session:
            if attach:
                return AttachSession(running, options, send)
            return ExecSession(running, options, send, self.exec_programs)

        if is_websocket(request):
            return await serve_websocket(request, options.command, make_session)
        return await serve_spdy(request, options, make_session)


def choose_container(pod: Object, requested: str | None) -> str:
    """The API server's container choice for log, exec and attach: the one given, or the only one."""
    name = pod["metadata"]["name"]
    containers = [c["name"] for c in pod["spec"].get("containers", [])]
    inits = [c["name"] for c in pod["spec"].get("initContainers", []) or []]
    if not requested:
        if len(containers) != 1:
            choices = " ".join(containers)
            raise StoreError(
                "BadRequest",
                400,
                f"a container name must be specified for pod {name}, choose one of: [{choices}]"
                + (f" or one of the init containers: [{' '.join(inits)}]" if inits else ""),
            )
        return str(containers[0])
    if requested not in containers + inits:
        raise StoreError("BadRequest", 400, f"container {requested} is not valid for pod {name}")
    return requested


def _waiting_reason(pod: Object, container: str) -> str:
    status = pod.get("status", {})
    for entry in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        if entry.get("name") == container:
            return str(entry.get("state", {}).get("waiting", {}).get("reason") or "ContainerCreating")
    return "ContainerCreating"
