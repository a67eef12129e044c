"""The sandbox API server process: an aiohttp app on 127.0.0.1 with authentication and RBAC (`http/access.py`).

Run as `python -m meshbook.sandbox.server --state DIR` (what `meshbook sandbox up` starts in the
background). It writes `DIR/server.json` (address, pid) once it answers, so the starter knows when it
is ready; the kubeconfig is written by the starter from the same facts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import shutil
import signal
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from meshbook.param_enums import SandboxSpeed
from meshbook.sandbox import clock
from meshbook.sandbox.addons import install_addons
from meshbook.sandbox.apiserver.authorization.bootstrap import ensure_bootstrap_policy
from meshbook.sandbox.apiserver.authorization.rbac import RBACAuthorizer
from meshbook.sandbox.apiserver.serviceaccounts import TokenService
from meshbook.sandbox.apiserver.tokens import TokenIssuer
from meshbook.sandbox.apiserver.verbs import ApiCore
from meshbook.sandbox.config import delays
from meshbook.sandbox.control import STATE_FILE
from meshbook.sandbox.controllers.manager import ControllerManager
from meshbook.sandbox.controllers.rbac_aggregation import ClusterRoleAggregationController
from meshbook.sandbox.http import discovery
from meshbook.sandbox.http.access import access_middleware
from meshbook.sandbox.http.handlers import ResourceHandlers
from meshbook.sandbox.http.openapi import documents as openapi
from meshbook.sandbox.http.wire import MAX_REQUEST_BODY_BYTES, error_response, json_response
from meshbook.sandbox.node.kubelet import Kubelet
from meshbook.sandbox.pki import ensure_serving_pki
from meshbook.sandbox.storage.resources import ResourceRegistry
from meshbook.sandbox.storage.store import Store, StoreError


@dataclass(frozen=True)
class ServerConfig:
    state_dir: Path
    token: str
    port: int = 0
    speed: SandboxSpeed = SandboxSpeed.INSTANT
    kubernetes_version: str = "1.33"


REQUEST_LOG = "requests.log"
REQUEST_LOG_LIMIT = 8 * 1024 * 1024  # bytes; then the log starts over (the previous one kept as .1)


def _request_log_middleware(path: Path) -> Any:
    """One line per API request, `METHOD PATH USER-AGENT` (no query, no body), so a test can prove which
    verbs a client sent (`meshbook audit` must send only reads)."""

    @web.middleware
    async def log_request(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        agent = request.headers.get("User-Agent", "-").split(" ", 1)[0] or "-"
        with contextlib.suppress(OSError):
            if path.exists() and path.stat().st_size > REQUEST_LOG_LIMIT:
                path.replace(path.with_name(REQUEST_LOG + ".1"))
            with path.open("a", encoding="utf-8") as log:
                log.write(f"{request.method} {request.path} {agent}\n")
        return await handler(request)

    return log_request


class Sandbox:
    """Everything one sandbox runs: store, API verbs, controllers and the kubelet stand-in."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        config.state_dir.mkdir(parents=True, exist_ok=True)
        # Cluster time: simulated at instant speed, with the seconds skipped before a restart (clock.py).
        clock.install(clock.for_state(config.state_dir, delays(config.speed).clock_scale))
        self.store = Store(config.state_dir / "store.sqlite")
        self.registry = ResourceRegistry()
        self.core = ApiCore(self.store, self.registry, server_minor=int(config.kubernetes_version.split(".")[1]))
        self.authorizer = RBACAuthorizer(self.store, self.registry)
        self.core.authorizer = self.authorizer
        ca_file, _, _ = ensure_serving_pki(config.state_dir)
        self.core.cluster_ca_pem = ca_file.read_text()
        self.tokens = TokenService(self.core, TokenIssuer(config.state_dir))
        self.kubelet = Kubelet(self.core, config.state_dir, config.speed, self.tokens)
        self.controllers = ControllerManager(self.core, self.kubelet, config.speed)
        self.controllers.add(ClusterRoleAggregationController(self.core, config.speed))
        self.handlers = ResourceHandlers(self.core, self.kubelet, self.tokens)
        install_addons(self.core, self.kubelet, self.controllers, config.speed)

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[
                _request_log_middleware(self.config.state_dir / REQUEST_LOG),
                access_middleware(self.config.token, self.tokens, self.authorizer),
            ],
            client_max_size=MAX_REQUEST_BODY_BYTES,
        )
        app.router.add_get("/version", self._version)
        app.router.add_get("/version/", self._version)
        for probe in ("/healthz", "/readyz", "/livez"):
            app.router.add_get(probe, self._ok)
        app.router.add_get("/api", self._api)
        app.router.add_get("/apis", self._apis)
        app.router.add_get("/openapi/v2", self._openapi_v2)
        app.router.add_get("/openapi/v3", self._openapi_root)
        app.router.add_get("/openapi/v3/{path:.*}", self._openapi_doc)
        app.router.add_get("/apis/{group}/{version}", self._group_version)
        app.router.add_get("/api/v1", self._core_version)
        app.router.add_route("*", "/api/v1/{path:.*}", self.handlers.handle)
        app.router.add_route("*", "/apis/{path:.*}", self.handlers.handle)
        app.router.add_route("*", "/{path:.*}", self._not_found)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, app: web.Application) -> None:
        await ensure_bootstrap_policy(self.core)
        await self.controllers.start()

    async def _stop(self, app: web.Application) -> None:
        await self.controllers.stop()
        await self.kubelet.stop()
        self.store.close()

    async def _version(self, request: web.Request) -> web.Response:
        return json_response(discovery.version_info(self.config.kubernetes_version))

    async def _not_found(self, request: web.Request) -> web.Response:
        return error_response(StoreError("NotFound", 404, "the server could not find the requested resource"))

    async def _ok(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    def _discovery_response(self, request: web.Request, core: bool) -> web.Response:
        mode = discovery.negotiate_discovery(request.headers.get("Accept", ""))
        if mode == "legacy":
            body = discovery.api_versions() if core else discovery.api_group_list(self.registry)
            return json_response(body)
        body, content_type = discovery.aggregated_discovery(self.registry, core=core, mode=mode)
        return web.Response(body=json.dumps(body).encode(), headers={"Content-Type": content_type})

    async def _api(self, request: web.Request) -> web.Response:
        return self._discovery_response(request, core=True)

    async def _apis(self, request: web.Request) -> web.Response:
        return self._discovery_response(request, core=False)

    async def _core_version(self, request: web.Request) -> web.Response:
        return json_response(discovery.api_resource_list(self.registry, "", "v1"))

    async def _group_version(self, request: web.Request) -> web.Response:
        group, version = request.match_info["group"], request.match_info["version"]
        if not self.registry.in_group_version(group, version):
            return error_response(StoreError("NotFound", 404, "the server could not find the requested resource"))
        return json_response(discovery.api_resource_list(self.registry, group, version))

    def _openapi_answer(self, answer: openapi.HttpAnswer) -> web.Response:
        return web.Response(status=answer.status, headers=answer.headers, body=answer.body)

    async def _openapi_root(self, request: web.Request) -> web.Response:
        return await self._openapi_doc(request)

    async def _openapi_doc(self, request: web.Request) -> web.Response:
        answer = openapi.serve_openapi_v3(
            self.registry,
            request.match_info.get("path", ""),
            query_hash=request.query.get("hash"),
            if_none_match=request.headers.get("If-None-Match"),
            accept=request.headers.get("Accept"),
        )
        return self._openapi_answer(answer)

    async def _openapi_v2(self, request: web.Request) -> web.Response:
        answer = openapi.serve_openapi_v2(
            accept=request.headers.get("Accept"), if_none_match=request.headers.get("If-None-Match")
        )
        return self._openapi_answer(answer)


def ssl_context(state_dir: Path) -> ssl.SSLContext:
    _, cert, key = ensure_serving_pki(state_dir)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def serve(config: ServerConfig, ready_fd: int | None = None, lease_fd: int | None = None) -> None:
    sandbox = Sandbox(config)
    # Stored objects live as long as the server: keep them out of the collector's full passes,
    # which otherwise stall list requests for ~100 ms every few dozen requests.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 50)
    runner = web.AppRunner(sandbox.app(), handle_signals=False, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", config.port, ssl_context=ssl_context(config.state_dir))
    await site.start()
    server = getattr(site, "_server", None)
    port = server.sockets[0].getsockname()[1] if server and server.sockets else config.port
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    if lease_fd is not None:
        _watch_lease(loop, lease_fd, stop)
    state = {
        "pid": os.getpid(),
        "host": "127.0.0.1",
        "port": port,
        "speed": str(config.speed),
        "kubernetes_version": config.kubernetes_version,
    }
    # What in-cluster clients (OpenBao's kubernetes auth) use to reach this API server.
    sandbox.kubelet.services.apiserver_url = f"https://127.0.0.1:{port}"
    sandbox.kubelet.services.apiserver_ca_pem = sandbox.core.cluster_ca_pem
    tmp = config.state_dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state))
    tmp.replace(config.state_dir / STATE_FILE)
    if ready_fd is not None:
        os.write(ready_fd, (json.dumps(state) + "\n").encode())
        os.close(ready_fd)
    try:
        await stop.wait()
    finally:
        (config.state_dir / STATE_FILE).unlink(missing_ok=True)
        sandbox.store.end_watches()  # open watch streams finish, so shutdown need not wait for them
        await runner.cleanup()


def _watch_lease(loop: asyncio.AbstractEventLoop, fd: int, stop: asyncio.Event) -> None:
    """Shut down when the owner's end of the lease pipe closes (the owner ended, however it ended)."""
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            data = os.read(fd, 64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)
            os.close(fd)
            logging.getLogger(__name__).warning("owner of this sandbox ended: shutting down")
            stop.set()

    loop.add_reader(fd, readable)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m meshbook.sandbox.server")
    parser.add_argument("--state", required=True, type=Path)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--speed", choices=[s.value for s in SandboxSpeed], default=SandboxSpeed.INSTANT.value)
    parser.add_argument("--kubernetes-version", default="1.33")
    parser.add_argument("--ready-fd", type=int, help="file descriptor to write one line to once serving")
    parser.add_argument("--ephemeral", action="store_true", help="delete the state directory when the server stops")
    parser.add_argument("--lease-fd", type=int, help="read end of the owner's lease pipe: end-of-file stops the server")
    args = parser.parse_args(argv)
    token = (args.state / "token").read_text().strip()
    config = ServerConfig(args.state, token, args.port, SandboxSpeed(args.speed), args.kubernetes_version)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(config, args.ready_fd, args.lease_fd))
    finally:
        if args.ephemeral:
            # After every container (and OpenBao) stopped: nothing of the run's secrets stays on disk.
            shutil.rmtree(args.state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    # Its owner waits for this exit: skip the teardown of the frozen heap (`process_exit`).
    from meshbook.process_exit import exit_without_teardown

    exit_without_teardown(main())
