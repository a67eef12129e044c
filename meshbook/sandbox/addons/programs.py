"""What the well-known containers of an Istio + Bank-Vaults cluster do when the sandbox runs them.

`resolve_program` is the kubelet's resolver: it recognises Istio's proxy and init containers, the
webhook's copy-vault-env, the Bank-Vaults containers (vault, `bank-vaults unseal`, `bank-vaults
configure`, `bank-vaults template`) and vault-env wrapped containers; everything else falls through to
the shell interpreter.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from meshbook.sandbox.addons.bank_vaults import ConfigureProgram, UnsealProgram, VaultServerProgram
from meshbook.sandbox.addons.vault_agent import VaultAgentProgram
from meshbook.sandbox.addons.vault_env import VaultEnvProgram
from meshbook.sandbox.node.containers import ContainerContext, ContainerProgram

log = logging.getLogger(__name__)


class ExitAt(ContainerProgram):
    """A program that does its work at once and exits (iptables setup, copying a binary)."""

    manages_readiness = False

    def __init__(self, code: int = 0, lines: tuple[str, ...] = ()) -> None:
        self.code = code
        self.lines = lines

    async def run(self, ctx: ContainerContext) -> int:
        for line in self.lines:
            ctx.log.write(line)
        return self.code


class RunsUntilStopped(ContainerProgram):
    """A long-running server (istio-proxy, istiod, the operator, the webhook)."""

    manages_readiness = False

    def __init__(self, lines: tuple[str, ...] = ()) -> None:
        self.lines = lines

    async def run(self, ctx: ContainerContext) -> int:
        for line in self.lines:
            ctx.log.write(line)
        await ctx.stopping.wait()
        return 0


def _image(container: Mapping[str, Any]) -> str:
    return str(container.get("image", ""))


def _argv(container: Mapping[str, Any]) -> list[str]:
    return [*(container.get("command") or []), *(container.get("args") or [])]


def resolve_program(pod: Mapping[str, Any], container: Mapping[str, Any], is_init: bool) -> ContainerProgram | None:
    name = container.get("name", "")
    image = _image(container)
    argv = _argv(container)
    if argv[:1] == ["/vault/vault-env"]:
        return VaultEnvProgram()
    if name == "vault-agent" and "agent" in argv[:2]:
        return VaultAgentProgram()
    if "istio/proxyv2" in image:
        if name == "istio-proxy":
            return RunsUntilStopped(('info\tFLAG: --proxyLogLevel="warning"', "info\tEnvoy proxy is ready"))
        if name == "istio-validation":
            return ExitAt(0, ("info\tValidation passed, iptables rules established",))
        return ExitAt(0, ("info\tIstio iptables environment:", "info\tIstio iptables rules applied"))
    if name == "copy-vault-env" or "bank-vaults/vault-env" in image:
        return ExitAt(0)
    if "bank-vaults/bank-vaults" in image:
        verb = next((a for a in argv if a in ("unseal", "configure", "template")), "")
        if verb == "unseal":
            return UnsealProgram()
        if verb == "configure":
            return ConfigureProgram()
        return ExitAt(0)
    if name == "vault" and (pod.get("metadata", {}).get("labels") or {}).get("vault_cr"):
        return VaultServerProgram()
    if any(
        tag in image
        for tag in ("istio/pilot", "istio/install-cni", "vault-operator", "vault-secrets-webhook", "statsd-exporter")
    ):
        return RunsUntilStopped()
    return None
