"""vault-env inside a sandbox container: log in to Vault, read the secrets, then run the program.

Each connection attempt is first judged by the mesh connectivity model at that moment (the container's
kind, the pod's sidecar mode, whether its istio-proxy is ready yet); a refused attempt is logged the way
vault-env logs it and retried until `VAULT_CLIENT_TIMEOUT`, then the container exits 1. An allowed
attempt is REAL: TLS to the OpenBao server with the CA from the pod's own namespace, a kubernetes-auth
login with the pod's service-account JWT (OpenBao asks the sandbox's TokenReview), KV reads. Then the
original command runs with the references replaced: `vault:PATH#KEY`, inline `${vault:...}` and template
keys, in the injector's syntax (`vault_injector.py`; FACTS 1 and 4 for the log lines).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import ssl
import time
from typing import Any
from urllib.parse import urlparse

from meshbook.sandbox.addons.mesh_view import judge_from_pod
from meshbook.sandbox.addons.vault_client import VaultClient, VaultRequestError
from meshbook.sandbox.addons.vault_injector import InjectionError, inject, inject_from_paths, is_reference
from meshbook.sandbox.node.containers import ContainerContext, ShellProgram


def _duration(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text.strip())
    if not match:
        return 10.0
    value, unit = float(match[1]), match[2] or "s"
    return value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def _slog(level: str, msg: str, **attrs: str) -> str:
    """vault-env's log line (Go slog text handler)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    extra = "".join(f" {k}={_quote(v)}" for k, v in attrs.items())
    return f"time={stamp} level={level} msg={_quote(msg)} app=vault-env{extra}"


def _quote(value: str) -> str:
    if value and re.fullmatch(r"[\w./:-]+", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


class InjectFailed(Exception):
    """The login worked but a reference could not be resolved (the injector's text)."""


def _login_and_inject(
    client: VaultClient, role: str, auth_path: str, jwt: str, refs: dict[str, str], from_path: str
) -> dict[str, str]:
    """Real Vault API calls (blocking; run in a thread): login, then the injector over the references."""
    client.login(auth_path, role, jwt)
    try:
        values = inject(refs, client.read)
    except (InjectionError, VaultRequestError) as exc:
        raise InjectFailed(f"failed to inject secrets from vault: {exc}") from None
    try:
        return values | (inject_from_paths(from_path, client.read) if from_path else {})
    except (InjectionError, VaultRequestError) as exc:
        raise InjectFailed(f"failed to inject secrets from vault path: {exc}") from None


class VaultEnvProgram:
    manages_readiness = False

    async def run(self, ctx: ContainerContext) -> int:
        env = dict(ctx.env)
        refs = {name: value for name, value in env.items() if is_reference(value)}
        original = list(ctx.container.get("args") or [])
        address = env.get("VAULT_ADDR", "https://vault:8200")
        url = urlparse(address)
        host, port = url.hostname or "vault", url.port or 8200
        timeout = _duration(env.get("VAULT_CLIENT_TIMEOUT", "10s"))
        meta = ctx.pod["metadata"]
        namespace = meta["namespace"]
        if refs or env.get("VAULT_ENV_FROM_PATH"):
            values = await self._fetch(ctx, refs, address, host, port, timeout, env, namespace, judge_from_pod)
            if values is None:
                return 1
            env.update(values)
        wrapped = dataclasses.replace(ctx, env=env)
        code = await ShellProgram(original, []).run(wrapped)
        ctx.termination_reason = wrapped.termination_reason  # OOMKilled is the container's end too
        return code

    async def _fetch(
        self,
        ctx: ContainerContext,
        refs: dict[str, str],
        address: str,
        host: str,
        port: int,
        timeout: float,
        env: dict[str, str],
        namespace: str,
        judge: Any,
    ) -> dict[str, str] | None:
        tokens = ctx.services.tokens
        waited = 0.0
        step = 1.0
        while True:
            verdict, backend = judge(ctx, host, port)
            if verdict.allowed and backend is not None:
                ca = ctx.services.secret_data(namespace, _tls_secret(ctx)) or {}
                sa = ctx.pod["spec"].get("serviceAccountName", "default")
                jwt = tokens.token_for(namespace, sa, dict(ctx.pod))
                try:
                    client = VaultClient(f"https://{backend[0]}:{backend[1]}", address, ca.get("ca.crt", b""), host)
                    values: dict[str, str] = await asyncio.to_thread(
                        _login_and_inject,
                        client,
                        env.get("VAULT_ROLE", "default"),
                        env.get("VAULT_PATH", "kubernetes"),
                        jwt or "",
                        refs,
                        env.get("VAULT_ENV_FROM_PATH", ""),
                    )
                except InjectFailed as exc:
                    ctx.log.write(_slog("INFO", "received new Vault token"))
                    ctx.log.write(_slog("INFO", "initial Vault token arrived"))
                    ctx.log.write(_slog("ERROR", str(exc)))
                    return None
                except VaultRequestError as exc:
                    ctx.log.write(_slog("ERROR", "failed to request new Vault token", err=str(exc)))
                    ctx.log.write(_slog("ERROR", "failed to create vault client", err=str(exc)))
                    return None
                except (OSError, ssl.SSLError) as exc:
                    failure = f'Put "{address}/v1/auth/kubernetes/login": {exc}'
                    ctx.log.write(_slog("ERROR", "failed to request new Vault token", err=failure))
                else:
                    ctx.log.write(_slog("INFO", "received new Vault token"))
                    ctx.log.write(_slog("INFO", "initial Vault token arrived"))
                    return values
            else:
                err = f'Put "{address}/v1/auth/{env.get("VAULT_PATH", "kubernetes")}/login": {verdict.failure}'
                ctx.log.write(_slog("ERROR", "failed to request new Vault token", err=err))
            if waited + step > timeout:
                ctx.log.write(
                    _slog(
                        "ERROR",
                        "failed to create vault client",
                        err=f"timeout [{timeout:g}s] during waiting for Vault token",
                    )
                )
                return None
            if not await ctx.sleep(step):
                return None
            waited += step


def _tls_secret(ctx: ContainerContext) -> str:
    annotations = ctx.pod["metadata"].get("annotations") or {}
    return str(annotations.get("vault.security.banzaicloud.io/vault-tls-secret", "vault-tls"))
