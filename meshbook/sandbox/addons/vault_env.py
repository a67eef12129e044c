"""vault-env inside a sandbox container: log in to Vault, read the secrets, then run the program.

Each connection attempt is first judged by the mesh connectivity model at that moment (the container's
kind, the pod's sidecar mode, whether its istio-proxy is ready yet); a refused attempt is logged the way
vault-env logs it and retried until `VAULT_CLIENT_TIMEOUT`, then the container exits 1. An allowed
attempt is REAL: TLS to the OpenBao server with the CA from the pod's own namespace, a kubernetes-auth
login with the pod's service-account JWT (OpenBao asks the sandbox's TokenReview), a KV read. Then the
original command runs with the `vault:` references replaced (FACTS 1 and 4 for the log lines).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from meshbook.sandbox.addons.mesh_view import judge_from_pod
from meshbook.sandbox.node.containers import ContainerContext, ShellProgram

REFERENCE = re.compile(r"^vault:(?P<path>[^#]+)#(?P<key>[^#]+)(?:#(?P<version>\d+))?$")


class VaultRequestError(Exception):
    """A Vault API answer other than success; the text is what vault-env would print (no values)."""


@dataclass(frozen=True)
class Reference:
    env_name: str
    path: str
    key: str
    version: str | None


def references(env: dict[str, str]) -> list[Reference]:
    out = []
    for name, value in env.items():
        match = REFERENCE.match(value)
        if match:
            out.append(Reference(name, match["path"], match["key"], match["version"]))
    return out


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


def _login_and_read(
    address: str,
    display: str,
    ca_pem: bytes,
    server_name: str,
    role: str,
    auth_path: str,
    jwt: str,
    refs: list[Reference],
) -> dict[str, str]:
    """Real Vault API calls (blocking; run in a thread): login, then one KV read per reference."""
    import json
    import urllib.error
    import urllib.request

    context = ssl.create_default_context(cadata=ca_pem.decode())
    context.check_hostname = True

    class _SNIHandler(urllib.request.HTTPSHandler):
        def https_open(self, req: Any) -> Any:
            return self.do_open(_connection_with_sni(server_name, context), req)

    opener = urllib.request.build_opener(_SNIHandler())

    def call(method: str, path: str, body: dict[str, Any] | None = None, token: str | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{address}/v1/{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("X-Vault-Token", token)
        try:
            with opener.open(req, timeout=10) as resp:
                payload: dict[str, Any] = json.loads(resp.read() or b"{}")
                return payload
        except urllib.error.HTTPError as exc:
            try:
                errors = json.loads(exc.read() or b"{}").get("errors", [])
            except ValueError:
                errors = []
            shown = "\n".join(f"\t* {e}" for e in errors) or f"\t* {exc.reason}"
            raise VaultRequestError(
                f"Error making API request.\n\nURL: {method} {display}/v1/{path}\nCode: {exc.code}. Errors:\n\n{shown}"
            ) from None

    login = call("POST", f"auth/{auth_path}/login", {"role": role, "jwt": jwt})
    token = login["auth"]["client_token"]
    values: dict[str, str] = {}
    for ref in refs:
        query = f"?version={ref.version}" if ref.version else ""
        secret = call("GET", ref.path + query, token=token)
        data = (secret.get("data") or {}).get("data") if "/data/" in ref.path else secret.get("data")
        if not data or ref.key not in data:
            raise VaultRequestError(f"key '{ref.key}' not found under path: {ref.path}")
        values[ref.env_name] = str(data[ref.key])
    return values


def _connection_with_sni(server_name: str, context: ssl.SSLContext) -> Any:
    import http.client

    class Connection(http.client.HTTPSConnection):
        def __init__(self, host: str, **kwargs: Any) -> None:
            kwargs.pop("context", None)
            super().__init__(host, context=context, **kwargs)

        def connect(self) -> None:
            import socket

            self.sock = socket.create_connection((self.host, self.port), self.timeout)
            self.sock = context.wrap_socket(self.sock, server_hostname=server_name)

    return Connection


class VaultEnvProgram:
    manages_readiness = False

    async def run(self, ctx: ContainerContext) -> int:
        env = dict(ctx.env)
        refs = references(env)
        original = list(ctx.container.get("args") or [])
        address = env.get("VAULT_ADDR", "https://vault:8200")
        url = urlparse(address)
        host, port = url.hostname or "vault", url.port or 8200
        timeout = _duration(env.get("VAULT_CLIENT_TIMEOUT", "10s"))
        meta = ctx.pod["metadata"]
        namespace = meta["namespace"]
        if refs:
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
        refs: list[Reference],
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
                    values: dict[str, str] = await asyncio.to_thread(
                        _login_and_read,
                        f"https://{backend[0]}:{backend[1]}",
                        address,
                        ca.get("ca.crt", b""),
                        host,
                        env.get("VAULT_ROLE", "default"),
                        env.get("VAULT_PATH", "kubernetes"),
                        jwt or "",
                        refs,
                    )
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
