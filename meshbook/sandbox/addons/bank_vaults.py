"""The Vault pod's containers and the configurer, backed by a real OpenBao server.

`vault` starts OpenBao (TLS from Secret `<cr>-tls`, file storage under the sandbox's state directory,
kept per pod name so a recreated `vault-0` finds its data again) and is Ready only while OpenBao is
initialised and unsealed, like the operator's readiness probe. `bank-vaults unseal --init` initialises
and unseals it through the Vault API, keeping keys and root token in Secret `<cr>-unseal-keys`.
`bank-vaults configure` applies the CR's `externalConfig` through the Vault API.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
import logging
import os
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from meshbook.param_enums import SandboxSpeed
from meshbook.sandbox.apiserver.authorization.acting import ActingCore
from meshbook.sandbox.apiserver.authorization.user import UserInfo, service_account_user
from meshbook.sandbox.config import script_sleep
from meshbook.sandbox.node.containers import ContainerContext
from meshbook.sandbox.storage.store import StoreError

log = logging.getLogger(__name__)


READINESS_FAILURE_THRESHOLD = 3
# A kubelet-projected token is valid for a year to its holder (kube-apiserver's extended expiration), so
# the reviewer token the configurer hands OpenBao outlives any sandbox session.
PROJECTED_TOKEN_SECONDS = 365 * 24 * 3600


def pod_user(ctx: ContainerContext) -> UserInfo:
    """The service account the container's pod runs as: whom its API calls are authorized for."""
    meta, spec = ctx.pod["metadata"], ctx.pod.get("spec") or {}
    return service_account_user(meta["namespace"], spec.get("serviceAccountName") or "default")


def _poll_interval(speed: SandboxSpeed) -> float:
    return 0.05 if speed is SandboxSpeed.INSTANT else 1.0


def _arg(argv: list[str], flag: str, default: str) -> str:
    return argv[argv.index(flag) + 1] if flag in argv and argv.index(flag) + 1 < len(argv) else default


def _servers(ctx: ContainerContext) -> dict[tuple[str, str], Any]:
    servers: dict[tuple[str, str], Any] = ctx.services.addon_state.setdefault("openbao", {})
    return servers


async def _load_vault_api() -> None:
    """Import the Vault API layer (hvac, requests: ~0.2 s of CPU) in a thread: on the event loop it held
    every request and pod for that long, and the vault container can spawn bao first and import meanwhile."""
    await asyncio.to_thread(importlib.import_module, "meshbook.sandbox.vault.operations")


class PollerClient:
    """A poller's Vault API client, kept while the server's address and CA file stay the same: its keep-alive
    connection spares a TLS handshake per poll (~2 ms of CPU on each side, 20 polls a second per poller
    at `instant` speed), as Bank-Vaults' own loop keeps one client."""

    def __init__(self) -> None:
        self._key: tuple[str, str] | None = None
        self._api: Any = None

    def get(self, address: str, ca_file: Path | str) -> Any:
        from meshbook.sandbox.vault.apiclient import vault_client

        key = (address, str(ca_file))
        if key != self._key:
            self._api, self._key = vault_client(address, ca_file), key
        return self._api


class OpenBaoChanges:
    """Wakes a Vault CR's pollers (the readiness check, `bank-vaults unseal`, `bank-vaults configure`) when
    the sandbox itself has just changed what they poll: a server listening or gone, an init or unseal, a
    `vault` CLI run in the pod.

    Each still polls on its period (a program's sleep, scaled by `config.script_sleep`), for what the sandbox
    cannot see, such as a seal through the API. Woken, a poller polls at once: what was left of its period
    is a wait that no cluster has at `instant` speed, where the next poll comes at no cost in time.
    """

    def __init__(self) -> None:
        self.generation = 0  # changes so far: a poller notes it before it polls
        self._waiters: set[asyncio.Event] = set()

    def notify(self) -> None:
        self.generation += 1
        for waiter in self._waiters:
            waiter.set()

    async def sleep(self, ctx: ContainerContext, seconds: float, seen: int) -> bool:
        """`ctx.sleep(seconds)`, ended early by a change after generation `seen`; False once the container
        is stopped."""
        if self.generation == seen and not ctx.stopping.is_set():
            woken = asyncio.Event()
            self._waiters.add(woken)
            waits = {asyncio.ensure_future(ctx.stopping.wait()), asyncio.ensure_future(woken.wait())}
            try:
                await asyncio.wait(waits, timeout=script_sleep(seconds, ctx.speed), return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._waiters.discard(woken)
                for wait in waits:
                    wait.cancel()
        return not ctx.stopping.is_set()


def openbao_changes(ctx: ContainerContext, namespace: str, cr: str) -> OpenBaoChanges:
    """The change signal of the Vault CR `namespace/cr`, shared by its pods' containers."""
    signals: dict[tuple[str, str], OpenBaoChanges] = ctx.services.addon_state.setdefault("openbao-changes", {})
    return signals.setdefault((namespace, cr), OpenBaoChanges())


class SecretKeysStore:
    """Unseal keys and root token in a Secret, written from the Vault-API thread via the event loop, as the
    vault pod's service account (`bank-vaults unseal` needs its Role on Secrets, like on a cluster)."""

    def __init__(self, ctx: ContainerContext, namespace: str, name: str, loop: asyncio.AbstractEventLoop) -> None:
        self.ctx, self.namespace, self.name, self.loop = ctx, namespace, name, loop
        self.api = ActingCore(ctx.services.core, pod_user(ctx))

    def _on_loop(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def load(self) -> dict[str, str] | None:
        async def read() -> dict[str, bytes] | None:
            rt = self.api.core.registry.lookup("", "v1", "secrets")
            assert rt is not None
            self.api.check("get", rt, self.namespace, self.name)
            return self.ctx.services.secret_data(self.namespace, self.name)

        data = self._on_loop(read())
        return {k: v.decode() for k, v in data.items()} if data else None

    def save(self, values: dict[str, str]) -> None:
        async def write() -> None:
            core = self.api.core
            rt = core.registry.lookup("", "v1", "secrets")
            assert rt is not None
            body: dict[str, Any] = {
                "metadata": {"name": self.name, "labels": {"app.kubernetes.io/name": "vault"}},
                "type": "Opaque",
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
            }
            if self.api.get(rt, self.namespace, self.name) is None:
                await self.api.create(rt, self.namespace, body)
            else:
                body["metadata"]["resourceVersion"] = ""
                await self.api.update(rt, self.namespace, self.name, body)

        self._on_loop(write())


def _ca_file(ctx: ContainerContext, namespace: str, cr: str) -> Path | None:
    data = ctx.services.secret_data(namespace, f"{cr}-tls")
    if not data or "ca.crt" not in data:
        return None
    state: Path = ctx.services.state_dir
    return write_private_file(state / "openbao" / namespace / cr / "ca.crt", data["ca.crt"])


class VaultServerProgram:
    """The `vault` container: a real OpenBao server for the lifetime of the container."""

    manages_readiness = True

    async def run(self, ctx: ContainerContext) -> int:
        from meshbook.sandbox.vault.openbao import OpenBaoServer  # the standard library only

        meta = ctx.pod["metadata"]
        ns, pod_name, cr = meta["namespace"], meta["name"], meta["labels"]["vault_cr"]
        tls = ctx.services.secret_data(ns, f"{cr}-tls")
        if not tls:
            ctx.log.write(f'Error initializing listener of type tcp: error loading TLS cert: secret "{cr}-tls" missing')
            return 1
        state: Path = ctx.services.state_dir
        data_dir = state / "openbao" / ns / pod_name
        from meshbook.sandbox.vault.server_config import server_settings

        settings = server_settings(_vault_config(ctx, ns, cr)).applied
        server = OpenBaoServer(log_level=str(settings.pop("log_level", "info")), settings=settings)
        changes = openbao_changes(ctx, ns, cr)
        try:
            await asyncio.to_thread(server.start, data_dir, tls["server.crt"], tls["server.key"])
            # bao starts in its own process while the Vault API layer loads in this one.
            await asyncio.gather(asyncio.to_thread(server.wait_listening, 30.0), _load_vault_api())
        except Exception as exc:
            ctx.log.write(f"Error starting OpenBao: {type(exc).__name__}")
            await asyncio.to_thread(server.stop)
            return 1
        from meshbook.sandbox.vault.operations import health

        port = int(server.address.rsplit(":", 1)[1])
        ctx.listen(8200, "127.0.0.1", port)
        _servers(ctx)[(ns, pod_name)] = server
        changes.notify()  # `bank-vaults unseal` has a server to unseal
        ctx.log.write("==> OpenBao server configuration:")
        ctx.log.write("             Storage: file")
        ctx.log.write('            Listener 1: tcp (addr: "0.0.0.0:8200", tls: "enabled")')
        ctx.log.write("==> OpenBao server started! Log data will stream in below:")
        ca_file = _ca_file(ctx, ns, cr)
        client = PollerClient()
        failures = 0  # like a readiness probe's failureThreshold: one failed check is not enough
        try:
            while not ctx.stopping.is_set():
                seen = changes.generation
                if not server.running:
                    # The server process died: the container exits, and the kubelet restarts it (back-off,
                    # restart count, Ready false meanwhile); the unseal sidecar unseals the new one.
                    ctx.log.write(f"OpenBao server exited with code {server.returncode}")
                    return 1
                try:
                    api = client.get(server.address, str(ca_file))
                    status = await asyncio.to_thread(health, server.address, str(ca_file), api)
                    healthy = bool(status.get("initialized")) and not status.get("sealed", True)
                except Exception:
                    healthy = False
                failures = 0 if healthy else failures + 1
                if healthy or failures >= READINESS_FAILURE_THRESHOLD:
                    ctx.mark_ready(healthy)
                period = _poll_interval(ctx.speed) * (1 if ctx.speed is SandboxSpeed.REALISTIC else 100)
                if not await changes.sleep(ctx, period, seen):
                    break
        finally:
            _servers(ctx).pop((ns, pod_name), None)
            await asyncio.to_thread(server.stop)
            changes.notify()
        return 0


class UnsealProgram:
    """`bank-vaults unseal --init`: initialise once, unseal whenever OpenBao is sealed."""

    manages_readiness = False

    async def run(self, ctx: ContainerContext) -> int:
        await _load_vault_api()
        from meshbook.sandbox.vault.operations import init_and_unseal

        meta = ctx.pod["metadata"]
        ns, pod_name, cr = meta["namespace"], meta["name"], meta["labels"]["vault_cr"]
        changes = openbao_changes(ctx, ns, cr)
        argv = [*(ctx.container.get("command") or []), *(ctx.container.get("args") or [])]
        store = SecretKeysStore(
            ctx,
            _arg(argv, "--k8s-secret-namespace", ns),
            _arg(argv, "--k8s-secret-name", f"{cr}-unseal-keys"),
            asyncio.get_running_loop(),
        )
        sealed_logged = False
        client = PollerClient()
        while not ctx.stopping.is_set():
            seen = changes.generation
            server = _servers(ctx).get((ns, pod_name))
            ca_file = _ca_file(ctx, ns, cr)
            if server is not None and ca_file is not None:
                try:
                    api = client.get(server.address, str(ca_file))
                    result = await asyncio.to_thread(init_and_unseal, server.address, str(ca_file), store, api=api)
                    if result.initialized_now or result.unsealed_now:
                        # Unsealed and active: Ready for the readiness check, and the configurer can write. Not
                        # cued at the unseal itself: a standby's brief window before its election would then be
                        # Ready for all to see, and vault-env gives up at once on a standby's refusal.
                        changes.notify()
                    if not result.sealed and not sealed_logged:
                        ctx.log.write('time="" level=info msg="vault is unsealed"')
                        sealed_logged = True
                    elif result.sealed:
                        sealed_logged = False
                except StoreError as exc:  # the API server refused: its message names objects, never values
                    err = exc.message.replace('"', '\\"')
                    ctx.log.write(f'level=error msg="error unsealing vault" err="{err}"')
                except Exception as exc:
                    ctx.log.write(f'level=error msg="error unsealing vault" err="{type(exc).__name__}"')
            period = _poll_interval(ctx.speed) * (1 if ctx.speed is SandboxSpeed.REALISTIC else 100)
            if not await changes.sleep(ctx, period, seen):
                break
        return 0


class ConfigureProgram:
    """`bank-vaults configure`: apply the CR's externalConfig once Vault is unsealed, and keep it applied."""

    manages_readiness = False

    async def run(self, ctx: ContainerContext) -> int:
        await _load_vault_api()
        from meshbook.sandbox.vault.operations import configure, health

        meta = ctx.pod["metadata"]
        ns, cr = meta["namespace"], meta["labels"]["vault_cr"]
        changes = openbao_changes(ctx, ns, cr)
        argv = [*(ctx.container.get("command") or []), *(ctx.container.get("args") or [])]
        keys_ns = _arg(argv, "--k8s-secret-namespace", ns)
        keys_name = _arg(argv, "--k8s-secret-name", f"{cr}-unseal-keys")
        applied: str | None = None
        while not ctx.stopping.is_set():
            seen = changes.generation
            server = next((s for (n, p), s in _servers(ctx).items() if n == ns and p.startswith(f"{cr}-")), None)
            ca_file = _ca_file(ctx, ns, cr)
            keys = ctx.services.secret_data(keys_ns, keys_name)
            raw = ctx.services.secret_data(ns, f"{cr}-raw-config")
            config_text = (raw or {}).get("vault-config.yml", b"{}").decode()
            # Nothing to do while this config is applied: no health call either (20 a second at instant speed).
            needed = config_text != applied
            if needed and server is not None and ca_file is not None and keys and "vault-root" in keys and raw:
                try:
                    status = await asyncio.to_thread(health, server.address, str(ca_file))
                    # The active node: a standby just unsealed has yet to win its election.
                    active = status.get("initialized") and not status.get("sealed", True) and not status.get("standby")
                    if active and applied != config_text:
                        actions = await asyncio.to_thread(
                            configure,
                            server.address,
                            str(ca_file),
                            keys["vault-root"].decode(),
                            json.loads(config_text),
                            ctx.services.apiserver_url,
                            ctx.services.apiserver_ca_pem,
                            _reviewer_token(ctx),
                        )
                        for action in actions:
                            ctx.log.write(f'level=info msg="{action}"')
                        ctx.log.write('level=info msg="successfully configured vault"')
                        applied = config_text
                except Exception as exc:
                    ctx.log.write(f'level=error msg="error configuring vault" err="{type(exc).__name__}: {_safe(exc)}"')
            period = _poll_interval(ctx.speed) * (5 if ctx.speed is SandboxSpeed.REALISTIC else 100)
            if not await changes.sleep(ctx, period, seen):
                break
        return 0


def _vault_config(ctx: ContainerContext, namespace: str, cr: str) -> dict[str, Any]:
    """The Vault CR's `spec.config` (the server's config file is templated from it)."""
    rt = ctx.services.core.registry.lookup("vault.banzaicloud.com", "v1alpha1", "vaults")
    vault = ctx.services.core.store.get(rt, namespace, cr) if rt is not None else None
    config = ((vault or {}).get("spec") or {}).get("config")
    return dict(config) if isinstance(config, dict) else {}


def _reviewer_token(ctx: ContainerContext) -> str | None:
    """The configurer pod's mounted service-account token, which Bank-Vaults sets as `token_reviewer_jwt`."""
    user = pod_user(ctx)
    namespace, _, name = user.name.removeprefix("system:serviceaccount:").partition(":")
    return ctx.services.tokens.token_for(namespace, name, dict(ctx.pod), expiration_seconds=PROJECTED_TOKEN_SECONDS)


def _safe(exc: Exception) -> str:
    """Exception text from the Vault API layer names operations and statuses, never values."""
    return str(exc).splitlines()[0][:200] if str(exc) else ""


def write_private_file(path: Path, data: bytes) -> Path:
    """Write atomically (readers in other threads never see half a file) and only when it changed."""
    if path.exists() and path.read_bytes() == data:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o600)
    tmp.replace(path)
    return path


def pod_openbao(ctx: ContainerContext, namespace: str, pod: str, cr: str) -> tuple[str, Path] | None:
    """The address of the OpenBao server behind a Vault pod and its CA file, while it serves."""
    server = _servers(ctx).get((namespace, pod))
    ca_file = _ca_file(ctx, namespace, cr)
    return (str(server.address), ca_file) if server is not None and ca_file is not None else None
