"""Installing Istio and Bank-Vaults behind one interface, whatever the target.

The runbooks call `installer_for(params, api).install_istio(params)` and never care how: on the sandbox
the objects a chart would create are applied (`meshbook.sandbox_install`); on a live cluster the real
tools run (`helm` for the OCI Bank-Vaults charts, `istioctl` or the Istio Helm charts). Tool commands go
through an injectable runner so tests check the exact command lines, and every result records the
commands and versions for the evidence bundle.
"""

from __future__ import annotations

import math
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from kubernetes import client

from meshbook import sandbox_install
from meshbook.bankvaults.chart_values import params_sets
from meshbook.errors import ExitCode, MeshbookError, UnreachableError, WaitTimeoutError
from meshbook.kube.apply import AppliedObject, Applier
from meshbook.manifests import vault_addr
from meshbook.params import IstioInstallMethod, RunbookParams, SidecarMode, Target

__all__ = [
    "ISTIO_CHART_REPO",
    "ISTIO_REPO_NAME",
    "OPERATOR_CHART",
    "OPERATOR_RELEASE",
    "WEBHOOK_CHART",
    "WEBHOOK_RELEASE",
    "BankVaultsInstaller",
    "HelmInstaller",
    "InstallResult",
    "Installer",
    "IstioHelmInstaller",
    "IstioInstaller",
    "IstioctlInstaller",
    "LiveInstaller",
    "Runner",
    "SandboxInstaller",
    "ToolMissingError",
    "installer_for",
    "run_command",
]

OPERATOR_RELEASE = "vault-operator"
OPERATOR_CHART = "oci://ghcr.io/bank-vaults/helm-charts/vault-operator"
WEBHOOK_RELEASE = "vault-secrets-webhook"
WEBHOOK_CHART = "oci://ghcr.io/bank-vaults/helm-charts/vault-secrets-webhook"
ISTIO_REPO_NAME = "istio"
ISTIO_CHART_REPO = "https://istio-release.storage.googleapis.com/charts"
_DEFAULT_ISTIO_NAMESPACE = "istio-system"
_OUTPUT_LINES = 20  # of each command's output kept in the result (and so in the evidence)

Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]
"""Runs one command line and returns its outcome (exit code, stdout, stderr as text); never raises on exit."""

Which = Callable[[str], "str | None"]

# conda-forge package that provides each tool (environment.yml lists them)
_CONDA_PACKAGE = {"helm": "kubernetes-helm", "istioctl": "istioctl"}


class ToolMissingError(MeshbookError):
    """A command-line tool a live install needs is not on PATH; nothing was run."""

    exit_code = ExitCode.BAD_INPUT


def run_command(cmd: list[str], timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """The default runner: the command with captured text output, no shell."""
    return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)


@dataclass(frozen=True)
class InstallResult:
    """What an install did: the commands run (live) or the objects applied (sandbox), and the versions."""

    component: Literal["istio", "bank-vaults"]
    method: Literal["sandbox", "helm", "istioctl"]
    namespace: str
    versions: Mapping[str, str]
    commands: tuple[tuple[str, ...], ...] = ()
    applied: tuple[AppliedObject, ...] = ()
    outputs: tuple[str, ...] = field(default=(), repr=False)  # last lines of each command's stdout

    @property
    def command_lines(self) -> list[str]:
        """The commands as a shell would show them (for the notebook and the report)."""
        return [shlex.join(cmd) for cmd in self.commands]

    @property
    def changed(self) -> bool:
        """Whether anything may have changed: any command ran, or any applied object changed."""
        return bool(self.commands) or any(item.changed for item in self.applied)


class IstioInstaller(Protocol):
    def install_istio(self, params: RunbookParams) -> InstallResult: ...


class BankVaultsInstaller(Protocol):
    def install_bank_vaults(self, params: RunbookParams) -> InstallResult: ...


class Installer(IstioInstaller, BankVaultsInstaller, Protocol):
    """Installs the guide's prerequisites: Istio (notebook 00) and the Bank-Vaults charts (notebook 01)."""


class SandboxInstaller:
    """The sandbox has no helm or istioctl: apply the objects the charts create; its controllers do the rest."""

    def __init__(self, api: client.ApiClient | Applier) -> None:
        self.applier = api if isinstance(api, Applier) else Applier(api)

    def install_istio(self, params: RunbookParams) -> InstallResult:
        applied = sandbox_install.install_istio(params, self.applier)
        return InstallResult(
            component="istio",
            method="sandbox",
            namespace=params.istio.namespace,
            versions={"istio": params.istio.version},
            applied=tuple(applied),
        )

    def install_bank_vaults(self, params: RunbookParams) -> InstallResult:
        applied = sandbox_install.install_bank_vaults(params, self.applier)
        return InstallResult(
            component="bank-vaults",
            method="sandbox",
            namespace=params.bank_vaults.namespace,
            versions=_bank_vaults_versions(params),
            applied=tuple(applied),
        )


def _bank_vaults_versions(params: RunbookParams) -> dict[str, str]:
    return {
        OPERATOR_RELEASE: params.bank_vaults.operator_chart_version,
        WEBHOOK_RELEASE: params.bank_vaults.webhook_chart_version,
    }


def _seconds(value: float) -> str:
    return f"{math.ceil(value)}s"


class _Tool:
    """Runs one command-line tool through the runner; turns failures into errors that say what to do."""

    def __init__(self, name: str, runner: Runner | None, which: Which, timeout: float | None) -> None:
        self.name = name
        self._which = which
        self._runner: Runner = runner if runner is not None else (lambda cmd: run_command(cmd, timeout))

    def path(self) -> str:
        found = self._which(self.name)
        if not found:
            raise ToolMissingError(
                f"{self.name} not found on PATH; target live needs it. Install it from environment.yml "
                f"(conda-forge package {_CONDA_PACKAGE[self.name]}): `conda env update -f environment.yml`, "
                f"then run again in that environment"
            )
        return found

    def run(self, cmd: list[str]) -> subprocess.CompletedProcess[str]:
        try:
            proc = self._runner(cmd)
        except subprocess.TimeoutExpired:
            raise WaitTimeoutError(f"`{shlex.join(cmd)}` did not finish in time") from None
        except OSError as exc:
            raise MeshbookError(f"cannot run `{shlex.join(cmd)}`: {exc.strerror or exc}") from None
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-5:])
            message = f"`{shlex.join(cmd)}` exited {proc.returncode}" + (f":\n{tail}" if tail else "")
            lowered = tail.lower()
            if "timed out" in lowered or "context deadline exceeded" in lowered:
                raise WaitTimeoutError(message)
            if "cluster unreachable" in lowered or "connection refused" in lowered:
                raise UnreachableError(message)
            raise MeshbookError(message)
        return proc


def _helm_cluster_flags(params: RunbookParams) -> list[str]:
    flags: list[str] = []
    if params.kubeconfig:
        flags += ["--kubeconfig", params.kubeconfig]
    if params.kube_context:
        flags += ["--kube-context", params.kube_context]
    return flags


def _helm_upgrade(
    helm: str,
    release: str,
    chart: str,
    version: str,
    namespace: str,
    params: RunbookParams,
    *,
    create_namespace: bool = True,
    sets: Sequence[str] = (),
) -> list[str]:
    cmd = [helm, "upgrade", "--install", release, chart, "--version", version, "--namespace", namespace]
    if create_namespace:
        cmd.append("--create-namespace")
    cmd += ["--wait", "--timeout", _seconds(params.timeouts.install)]
    for item in sets:
        cmd += ["--set", item]
    return cmd + _helm_cluster_flags(params)


def _flag(value: bool) -> str:
    return "true" if value else "false"


class _ToolInstaller:
    def __init__(self, tool: str, runner: Runner | None, which: Which, timeout: float | None) -> None:
        self._tool = _Tool(tool, runner, which, timeout)

    def _run_all(self, commands: list[list[str]]) -> tuple[tuple[tuple[str, ...], ...], tuple[str, ...]]:
        """Run the commands in order, stopping at the first failure; keep the tail of each one's output."""
        outputs = ["\n".join((self._tool.run(cmd).stdout or "").splitlines()[-_OUTPUT_LINES:]) for cmd in commands]
        return tuple(tuple(cmd) for cmd in commands), tuple(outputs)


class HelmInstaller(_ToolInstaller):
    """Bank-Vaults on a live cluster: the operator and webhook OCI charts, with `helm upgrade --install`.

    The webhook gets `env.VAULT_ADDR` (v1.23.1 only accepts an object's `vault-addr` equal to it or
    allow-listed, FACTS 4) and the scenario's `podsFailurePolicy`.
    """

    def __init__(self, runner: Runner | None = None, which: Which = shutil.which, timeout: float | None = None) -> None:
        super().__init__("helm", runner, which, timeout)

    def commands(self, params: RunbookParams) -> list[list[str]]:
        helm = self._tool.path()
        bv = params.bank_vaults
        return [
            _helm_upgrade(helm, OPERATOR_RELEASE, OPERATOR_CHART, bv.operator_chart_version, bv.namespace, params),
            _helm_upgrade(
                helm,
                WEBHOOK_RELEASE,
                WEBHOOK_CHART,
                bv.webhook_chart_version,
                bv.namespace,
                params,
                sets=params_sets(bv, vault_addr(params)),
            ),
        ]

    def install_bank_vaults(self, params: RunbookParams) -> InstallResult:
        commands, outputs = self._run_all(self.commands(params))
        return InstallResult(
            component="bank-vaults",
            method="helm",
            namespace=params.bank_vaults.namespace,
            versions=_bank_vaults_versions(params),
            commands=commands,
            outputs=outputs,
        )


def _istio_switches(params: RunbookParams) -> tuple[bool, bool, bool]:
    """(holdApplicationUntilProxyStarts, native sidecars, CNI); native is always explicit (default is auto)."""
    mode = params.istio.sidecar_mode
    return params.istio.hold_application_until_proxy_starts, mode is SidecarMode.NATIVE, mode is SidecarMode.CNI


class IstioctlInstaller(_ToolInstaller):
    """Istio with `istioctl install` (profile default); istioctl installs its own release, so its
    version must be `istio.version`."""

    def __init__(self, runner: Runner | None = None, which: Which = shutil.which, timeout: float | None = None) -> None:
        super().__init__("istioctl", runner, which, timeout)

    def version_command(self) -> list[str]:
        return [self._tool.path(), "version", "--remote=false"]

    def commands(self, params: RunbookParams) -> list[list[str]]:
        istioctl = self._tool.path()
        hold, native, cni = _istio_switches(params)
        ns = params.istio.namespace
        cmd = [istioctl, "install", "-y", "--set", "profile=default"]
        if ns != _DEFAULT_ISTIO_NAMESPACE:
            cmd += ["--set", f"namespace={ns}", "--set", f"values.global.istioNamespace={ns}"]
        cmd += [
            "--set",
            f"meshConfig.defaultConfig.holdApplicationUntilProxyStarts={_flag(hold)}",
            "--set",
            f"values.pilot.env.ENABLE_NATIVE_SIDECARS={_flag(native)}",
            "--set",
            f"components.cni.enabled={_flag(cni)}",
        ]
        if params.kubeconfig:
            cmd += ["--kubeconfig", params.kubeconfig]
        if params.kube_context:
            cmd += ["--context", params.kube_context]
        return [cmd]

    def _check_version(self, params: RunbookParams) -> tuple[str, ...]:
        cmd = self.version_command()
        out = self._tool.run(cmd).stdout
        found = re.search(r"\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.-]+)?", out)
        if found is None:
            raise MeshbookError(f"`{shlex.join(cmd)}` printed no version: {out.strip()[:200]!r}")
        if found.group(0) != params.istio.version:
            raise MeshbookError(
                f"istioctl at {cmd[0]} is Istio {found.group(0)} but istio.version is {params.istio.version}; "
                f"install istioctl {params.istio.version} (environment.yml, conda-forge package istioctl) "
                f"or set istio.version={found.group(0)}"
            )
        return tuple(cmd)

    def install_istio(self, params: RunbookParams) -> InstallResult:
        checked = self._check_version(params)
        commands, outputs = self._run_all(self.commands(params))
        return InstallResult(
            component="istio",
            method="istioctl",
            namespace=params.istio.namespace,
            versions={"istio": params.istio.version},
            commands=(checked, *commands),
            outputs=outputs,
        )


class IstioHelmInstaller(_ToolInstaller):
    """Istio with its Helm charts: `istio/base`, then `istio/cni` in CNI mode, then `istio/istiod`."""

    def __init__(self, runner: Runner | None = None, which: Which = shutil.which, timeout: float | None = None) -> None:
        super().__init__("helm", runner, which, timeout)

    def commands(self, params: RunbookParams) -> list[list[str]]:
        helm = self._tool.path()
        hold, native, cni = _istio_switches(params)
        ns, version = params.istio.namespace, params.istio.version
        repo = ISTIO_REPO_NAME
        sets = [
            f"meshConfig.defaultConfig.holdApplicationUntilProxyStarts={_flag(hold)}",
            f"pilot.env.ENABLE_NATIVE_SIDECARS={_flag(native)}",
            f"pilot.cni.enabled={_flag(cni)}",
        ]
        if ns != _DEFAULT_ISTIO_NAMESPACE:
            sets.append(f"global.istioNamespace={ns}")
        commands = [
            [helm, "repo", "add", repo, ISTIO_CHART_REPO, "--force-update"],
            [helm, "repo", "update", repo],
            _helm_upgrade(helm, "istio-base", f"{repo}/base", version, ns, params),
        ]
        if cni:
            commands.append(
                _helm_upgrade(helm, "istio-cni", f"{repo}/cni", version, ns, params, create_namespace=False)
            )
        istiod = _helm_upgrade(helm, "istiod", f"{repo}/istiod", version, ns, params, create_namespace=False, sets=sets)
        commands.append(istiod)
        return commands

    def install_istio(self, params: RunbookParams) -> InstallResult:
        commands, outputs = self._run_all(self.commands(params))
        return InstallResult(
            component="istio",
            method="helm",
            namespace=params.istio.namespace,
            versions={"istio": params.istio.version},
            commands=commands,
            outputs=outputs,
        )


class LiveInstaller:
    """A live cluster: one tool installer for Istio, helm for Bank-Vaults."""

    def __init__(self, istio: IstioInstaller, bank_vaults: BankVaultsInstaller) -> None:
        self.istio = istio
        self.bank_vaults = bank_vaults

    def install_istio(self, params: RunbookParams) -> InstallResult:
        return self.istio.install_istio(params)

    def install_bank_vaults(self, params: RunbookParams) -> InstallResult:
        return self.bank_vaults.install_bank_vaults(params)


def installer_for(
    params: RunbookParams,
    api: client.ApiClient | Applier,
    *,
    runner: Runner | None = None,
    which: Which = shutil.which,
) -> Installer:
    """The installer for `params.target`: the sandbox's, or helm plus `istio.install_method` on live."""
    if params.target is Target.SANDBOX:
        return SandboxInstaller(api)
    timeout = params.timeouts.install + 60  # the tools wait up to timeouts.install themselves
    istio: IstioInstaller
    if params.istio.install_method is IstioInstallMethod.HELM:
        istio = IstioHelmInstaller(runner, which, timeout)
    else:
        istio = IstioctlInstaller(runner, which, timeout)
    return LiveInstaller(istio, HelmInstaller(runner, which, timeout))
