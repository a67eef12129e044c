"""What runs "inside" a sandbox container: programs, their environment, logs and listening ports.

A program is chosen per container by an ordered list of resolvers (Istio's proxy, vault-env and OpenBao
plug in there); anything else runs through the small `sh` interpreter, so the guide's
`echo $X && sleep 10000` containers print what they would print on a real node.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from meshbook.param_enums import SandboxSpeed
from meshbook.sandbox.config import container_cpu, script_sleep
from meshbook.sandbox.node.cpu import CpuQuota
from meshbook.sandbox.node.logfiles import ContainerLog
from meshbook.sandbox.node.services import NodeServices
from meshbook.sandbox.node.shell.script import parse_command
from meshbook.sandbox.node.shell.utilities import Exit, Output, Sleep

__all__ = [
    "ContainerContext",
    "ContainerLog",
    "ContainerProgram",
    "EnvError",
    "ProgramResolver",
    "ShellProgram",
    "default_program",
    "resolve_env",
]


class EnvError(Exception):
    """A container's env references a missing Secret/ConfigMap key (CreateContainerConfigError)."""


@dataclass
class ContainerContext:
    """What a running program may use: its pod, spec, env, log, clock and readiness switch."""

    pod: Mapping[str, Any]
    container: Mapping[str, Any]
    is_init: bool
    env: dict[str, str]
    log: ContainerLog
    speed: SandboxSpeed
    stopping: asyncio.Event
    mark_ready: Callable[[bool], None]
    listen: Callable[[int, str, int], None]  # pod port -> real host and port (for port-forward)
    services: NodeServices  # what the node offers plug-ins: the API, state directory, tokens, pod network
    termination_reason: str = ""  # set by a program the node ended (OOMKilled); else Completed or Error

    async def sleep(self, seconds: float) -> bool:
        """Sleep as the program would; returns False if the container was stopped meanwhile."""
        real = script_sleep(seconds, self.speed)
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=real)
        except TimeoutError:
            return True
        return False


class ContainerProgram(Protocol):
    """A running container's main process; returns its exit code."""

    manages_readiness: bool

    async def run(self, ctx: ContainerContext) -> int: ...


ProgramResolver = Callable[[Mapping[str, Any], Mapping[str, Any], bool], "ContainerProgram | None"]


class ShellProgram:
    """Runs the container's command through the `sh` interpreter: output, sleeps, exit code.

    The script runs within its CPU quota (`node/cpu.py`: its `limits.cpu` or the default), so a
    script that never sleeps cannot hold the server's event loop.
    """

    manages_readiness = False

    def __init__(self, command: list[str], args: list[str]) -> None:
        self.script = parse_command(command, args)

    async def run(self, ctx: ContainerContext) -> int:
        quota = CpuQuota(container_cpu(ctx.container))
        for step in self.script.steps(ctx.env, ticks=True):
            if isinstance(step, Output):
                ctx.log.write(step.text, step.stream, step.partial)
            elif isinstance(step, Sleep):
                if not await ctx.sleep(step.seconds):
                    return 137
                quota.resume()
                continue
            elif isinstance(step, Exit):
                ctx.termination_reason = step.reason
                return step.code
            await quota.tick()
        return 0


def default_program(pod: Mapping[str, Any], container: Mapping[str, Any], is_init: bool) -> ContainerProgram:
    return ShellProgram(list(container.get("command") or []), list(container.get("args") or []))


def resolve_env(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    lookup: Callable[[str, str, str], Mapping[str, Any] | None],
) -> dict[str, str]:
    """The container's environment as the kubelet builds it (envFrom, then env, `$(VAR)` expanded).

    `lookup(kind, namespace, name)` returns a Secret or ConfigMap or None.
    """
    namespace = pod["metadata"].get("namespace", "")
    env: dict[str, str] = {
        "HOSTNAME": pod["metadata"]["name"],
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
    }

    def data_of(kind: str, name: str, optional: bool) -> dict[str, str] | None:
        obj = lookup(kind, namespace, name)
        if obj is None:
            if optional:
                return None
            raise EnvError(f'{kind.lower()} "{name}" not found')
        if kind == "Secret":
            return {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
        return dict(obj.get("data") or {})

    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
            ref = source.get(key)
            if ref:
                values = data_of(kind, ref["name"], bool(ref.get("optional")))
                env.update({prefix + k: v for k, v in (values or {}).items()})
    for item in container.get("env") or []:
        name = item["name"]
        if "value" in item or "valueFrom" not in item:
            env[name] = _expand(str(item.get("value", "")), env)
            continue
        source = item["valueFrom"]
        for kind, key in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
            ref = source.get(key)
            if ref:
                values = data_of(kind, ref["name"], bool(ref.get("optional")))
                if values is None:
                    break
                if ref["key"] not in values:
                    if ref.get("optional"):
                        break
                    raise EnvError(f"couldn't find key {ref['key']} in {kind} {namespace}/{ref['name']}")
                env[name] = values[ref["key"]]
        if "fieldRef" in source:
            env[name] = _field_value(pod, source["fieldRef"].get("fieldPath", ""))
    return env


def _expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion of env values (`$$` escapes)."""
    out, i = [], 0
    while i < len(value):
        if value.startswith("$$", i):
            out.append("$")
            i += 2
        elif value.startswith("$(", i) and ")" in value[i:]:
            end = value.index(")", i)
            var = value[i + 2 : end]
            out.append(env.get(var, f"$({var})"))
            i = end + 1
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def _field_value(pod: Mapping[str, Any], path: str) -> str:
    meta = pod.get("metadata", {})
    if path.startswith("metadata.labels['") or path.startswith("metadata.annotations['"):
        section, _, rest = path.partition("['")
        return str(meta.get(section.split(".")[1], {}).get(rest.rstrip("']"), ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": pod.get("spec", {}).get("nodeName"),
        "spec.serviceAccountName": pod.get("spec", {}).get("serviceAccountName"),
        "status.podIP": pod.get("status", {}).get("podIP"),
        "status.hostIP": pod.get("status", {}).get("hostIP"),
    }
    return str(simple.get(path) or "")
