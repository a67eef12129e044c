"""`vault agent` in the `vault-agent` container the webhook injects: auto-auth, then render templates.

It reads its config (`-config`, the ConfigMap of `vault-agent-configmap`), logs in with kubernetes
auth as the pod's service account against the real OpenBao (the connection judged by the connectivity
model first, retried as the agent retries), renders each `template` block's `contents` and writes it
to `destination`, in the pod's in-memory `agent-secrets` volume that the other containers mount. With
`-exit-after-auth` (`vault-agent-once`) it exits after rendering; otherwise it keeps running.

The config is read for what this needs (a `vault` address and CA, `auto_auth` kubernetes `mount_path`
and `role`, `template` `destination` and `contents`); templates know `{{ with secret "PATH" }}` and
fields such as `{{ .Data.data.KEY }}`; anything else is named in an error, never guessed.
"""

from __future__ import annotations

import asyncio
import posixpath
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from meshbook.sandbox.addons.mesh_view import judge_from_pod
from meshbook.sandbox.addons.vault_client import VaultClient, VaultRequestError
from meshbook.sandbox.node.containers import ContainerContext
from meshbook.sandbox.node.filesystem import container_files

ATTEMPTS = 30  # the agent retries auth with back-off; the sandbox gives up after this many tries


class AgentError(Exception):
    """What the agent prints before it exits 1 (no values)."""


@dataclass(frozen=True)
class Template:
    destination: str
    contents: str


@dataclass(frozen=True)
class AgentConfig:
    address: str
    ca_cert: str
    skip_verify: bool
    mount_path: str
    role: str
    templates: tuple[Template, ...]


_STRING = r'"((?:[^"\\]|\\.)*)"'


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]), text)


def _attribute(text: str, name: str) -> str | None:
    match = re.search(rf"\b{name}\s*=\s*{_STRING}", text)
    return _unquote(match[1]) if match else None


def _blocks(text: str, name: str) -> list[str]:
    """The bodies of `name { ... }` blocks (braces counted; heredocs and strings skipped)."""
    bodies = []
    for match in re.finditer(rf"(?m)^\s*{name}\s*(?:\"[^\"]*\"\s*)?\{{", text):
        depth, i = 1, match.end()
        while i < len(text) and depth:
            if text.startswith("<<", i):
                heredoc = re.match(r"<<-?(\w+)\n", text[i:])
                if heredoc:
                    end = re.search(rf"(?m)^\s*{heredoc[1]}\s*$", text[i + heredoc.end() :])
                    i += heredoc.end() + (end.end() if end else len(text))
                    continue
            if text[i] == '"':
                string = re.match(_STRING, text[i:])
                i += string.end() if string else 1
                continue
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        bodies.append(text[match.end() : i - 1])
    return bodies


def _contents(body: str) -> str:
    heredoc = re.search(r"\bcontents\s*=\s*<<(-?)(\w+)\n(.*?)\n\s*\2\s*$", body, re.S | re.M)
    if heredoc:
        lines = heredoc[3].split("\n")
        if heredoc[1]:
            indent = min((len(x) - len(x.lstrip()) for x in lines if x.strip()), default=0)
            lines = [x[indent:] for x in lines]
        return "\n".join(lines) + "\n"
    text = _attribute(body, "contents")
    if text is None:
        raise AgentError('template: only "contents" templates are supported by the sandbox (no "source" file)')
    return text


def parse_config(text: str, env: Mapping[str, str]) -> AgentConfig:
    vault = next(iter(_blocks(text, "vault")), "")
    method = next(iter(_blocks(text, "method")), "")
    templates = []
    for body in _blocks(text, "template"):
        destination = _attribute(body, "destination")
        if not destination:
            raise AgentError('template: "destination" is required')
        templates.append(Template(destination, _contents(body)))
    return AgentConfig(
        address=_attribute(vault, "address") or env.get("VAULT_ADDR", "https://127.0.0.1:8200"),
        ca_cert=_attribute(vault, "ca_cert") or env.get("VAULT_CACERT", ""),
        skip_verify=(_attribute(vault, "tls_skip_verify") or env.get("VAULT_SKIP_VERIFY", "false")) == "true",
        mount_path=(_attribute(method, "mount_path") or "auth/kubernetes").removeprefix("auth/"),
        role=_attribute(method, "role") or "",
        templates=tuple(templates),
    )


_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def _field(value: Any, path: str) -> str:
    node = value
    for part in path.strip(".").split("."):
        if not isinstance(node, Mapping) or part not in node:
            return "<no value>"
        node = node[part]
    return node if isinstance(node, str) else str(node)


def render(template: str, read: Any) -> str:
    """consul-template's `with secret` and field actions over real secrets."""
    out: list[str] = []
    scope: list[Any] = [{}]
    pos = 0
    for match in _ACTION.finditer(template):
        text = template[pos : match.start()]
        if match[1]:
            text = text.rstrip()
        if out and out[-1] == "\x00trim":
            out.pop()
            text = text.lstrip()
        out.append(text)
        action = match[2]
        with_secret = re.fullmatch(rf"with\s+secret\s+{_STRING}", action)
        if with_secret:
            secret = read(with_secret[1])
            scope.append({"Data": secret or {}})
        elif action == "end" and len(scope) > 1:
            scope.pop()
        elif action.startswith("."):
            out.append(_field(scope[-1], action))
        else:
            raise AgentError(f"template: the sandbox's agent does not know the action {{{{ {action} }}}}")
        if match[3]:
            out.append("\x00trim")
        pos = match.end()
    tail = template[pos:]
    if out and out[-1] == "\x00trim":
        out.pop()
        tail = tail.lstrip()
    return "".join(out) + tail


def _log(level: str, message: str) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return f"{stamp} [{level}] {message}"


class VaultAgentProgram:
    manages_readiness = False

    async def run(self, ctx: ContainerContext) -> int:
        argv = [*(ctx.container.get("command") or []), *(ctx.container.get("args") or [])]
        config_path = next((a.split("=", 1)[1] for a in argv if a.startswith("-config=")), "")
        if not config_path and "-config" in argv and argv.index("-config") + 1 < len(argv):
            config_path = argv[argv.index("-config") + 1]
        files = container_files(ctx)
        try:
            if config_path not in files:
                raise AgentError(f"error loading configuration from {config_path}: stat {config_path}: no such file")
            config = parse_config(files[config_path], ctx.env)
            ctx.log.write("==> Vault Agent started! Log data will stream in below:")
            await self._render_all(ctx, config, files)
        except AgentError as exc:
            ctx.log.write(_log("ERROR", f"agent: {exc}"))
            return 1
        if "-exit-after-auth" in argv:
            ctx.log.write(_log("INFO", "agent: (runner) stopping"))
            return 0
        await ctx.stopping.wait()
        return 0

    async def _render_all(self, ctx: ContainerContext, config: AgentConfig, files: Mapping[str, str]) -> None:
        url = urlparse(config.address)
        host, port = url.hostname or "127.0.0.1", url.port or 8200
        client = None
        for _ in range(ATTEMPTS):
            verdict, backend = judge_from_pod(ctx, host, port)
            if backend is not None:
                client = VaultClient(
                    f"https://{backend[0]}:{backend[1]}",
                    config.address,
                    files.get(config.ca_cert, "").encode(),
                    host,
                    skip_verify=config.skip_verify,
                )
                try:
                    await asyncio.to_thread(client.login, config.mount_path, config.role, self._jwt(ctx))
                    break
                except (VaultRequestError, OSError, ssl.SSLError) as exc:
                    ctx.log.write(_log("ERROR", f"agent.auth.handler: error authenticating: error={exc}"))
            else:
                put = f'Put "{config.address}/v1/auth/{config.mount_path}/login"'
                failure = f"{put}: {verdict.failure}"
                ctx.log.write(_log("ERROR", f"agent.auth.handler: error authenticating: error={failure}"))
            client = None
            if not await ctx.sleep(1.0):
                return
        if client is None:
            raise AgentError("auth: giving up after repeated authentication failures")
        ctx.log.write(_log("INFO", "agent.auth.handler: authentication successful, sending token to sinks"))
        for template in config.templates:
            try:
                text = await asyncio.to_thread(render, template.contents, lambda path: _read(client, path))
            except VaultRequestError as exc:
                raise AgentError(f"(runner) rendering {template.destination}: {exc}") from None
            self._write(ctx, template.destination, text)
            ctx.log.write(_log("INFO", f'agent: (runner) rendered "(dynamic)" => "{template.destination}"'))

    def _jwt(self, ctx: ContainerContext) -> str:
        meta, spec = ctx.pod["metadata"], ctx.pod.get("spec") or {}
        account = spec.get("serviceAccountName") or "default"
        return ctx.services.tokens.token_for(meta["namespace"], account, dict(ctx.pod)) or ""

    def _write(self, ctx: ContainerContext, destination: str, text: str) -> None:
        """Into the emptyDir volume mounted over `destination` (the agent's `agent-secrets`)."""
        volumes = {v.get("name"): v for v in ctx.pod.get("spec", {}).get("volumes") or []}
        for mount in ctx.container.get("volumeMounts") or []:
            root = posixpath.normpath(mount.get("mountPath", "/"))
            volume = volumes.get(mount.get("name")) or {}
            if "emptyDir" in volume and destination.startswith(root + "/"):
                key = (ctx.pod["metadata"].get("uid", ""), str(mount.get("name")))
                ctx.services.empty_dirs.setdefault(key, {})[destination[len(root) + 1 :]] = text
                return
        raise AgentError(f'(runner) failed to write "{destination}": read-only file system')


def _read(client: VaultClient, path: str) -> Mapping[str, Any] | None:
    """A secret as consul-template sees it (`.Data`: for KV v2 the `data` and `metadata` maps)."""
    answer = client.call("GET", path)
    data = (answer or {}).get("data")
    return data if isinstance(data, Mapping) else None
