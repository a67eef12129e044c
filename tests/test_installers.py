"""The installers: exact command lines for every live variant (nothing is run), errors, and the sandbox one."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from meshbook.bankvaults.chart_objects import bank_vaults_objects
from meshbook.errors import ExitCode, MeshbookError, UnreachableError, WaitTimeoutError
from meshbook.install import (
    HelmInstaller,
    InstallResult,
    IstioctlInstaller,
    IstioHelmInstaller,
    LiveInstaller,
    SandboxInstaller,
    ToolMissingError,
    installer_for,
)
from meshbook.mesh.istio_objects import istio_objects
from meshbook.params import RunbookParams, load_params

HELM = "/opt/tools/helm"
ISTIOCTL = "/opt/tools/istioctl"


def which(name: str) -> str | None:
    return f"/opt/tools/{name}"


def no_tools(name: str) -> str | None:
    return None


class Recorder:
    """A runner that records command lines and answers with canned output; runs nothing."""

    def __init__(self, stdout: str = "", returncode: int = 0, stderr: str = "") -> None:
        self.calls: list[list[str]] = []
        self.stdout, self.returncode, self.stderr = stdout, returncode, stderr

    def __call__(self, cmd: list[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(cmd))
        return subprocess.CompletedProcess(cmd, self.returncode, self.stdout, self.stderr)


def params(*overrides: str) -> RunbookParams:
    return load_params(overrides=["target=live", *overrides])


def operator_cmd(version: str = "1.24.0", ns: str = "vault-system", timeout: str = "300s") -> list[str]:
    return [
        HELM, "upgrade", "--install", "vault-operator", "oci://ghcr.io/bank-vaults/helm-charts/vault-operator",
        "--version", version, "--namespace", ns, "--create-namespace", "--wait", "--timeout", timeout,
    ]  # fmt: skip


def webhook_cmd(
    version: str = "1.23.1",
    ns: str = "vault-system",
    replicas: int = 2,
    addr: str = "https://vault.vault:8200",
    policy: str = "Ignore",
    timeout: str = "300s",
) -> list[str]:
    return [
        HELM, "upgrade", "--install", "vault-secrets-webhook",
        "oci://ghcr.io/bank-vaults/helm-charts/vault-secrets-webhook",
        "--version", version, "--namespace", ns, "--create-namespace", "--wait", "--timeout", timeout,
        "--set", f"replicaCount={replicas}", "--set", f"env.VAULT_ADDR={addr}", "--set", f"podsFailurePolicy={policy}",
    ]  # fmt: skip


# -- Bank-Vaults with helm -------------------------------------------------------------------------


TAIL = "\n".join([*(f"note {n}" for n in range(11, 30)), "STATUS: deployed"])  # the last 20 lines


def test_helm_bank_vaults_defaults() -> None:
    runner = Recorder(stdout="Pulled: chart\n" + "".join(f"note {n}\n" for n in range(30)) + "STATUS: deployed\n")
    result = HelmInstaller(runner, which).install_bank_vaults(params())
    assert runner.calls == [operator_cmd(), webhook_cmd()]
    assert result == InstallResult(
        component="bank-vaults",
        method="helm",
        namespace="vault-system",
        versions={"vault-operator": "1.24.0", "vault-secrets-webhook": "1.23.1"},
        commands=(tuple(operator_cmd()), tuple(webhook_cmd())),
        outputs=(TAIL, TAIL),
    )
    assert result.changed is True
    assert result.command_lines[1] == (
        "/opt/tools/helm upgrade --install vault-secrets-webhook "
        "oci://ghcr.io/bank-vaults/helm-charts/vault-secrets-webhook --version 1.23.1 --namespace vault-system "
        "--create-namespace --wait --timeout 300s --set replicaCount=2 "
        "--set env.VAULT_ADDR=https://vault.vault:8200 --set podsFailurePolicy=Ignore"
    )


@pytest.mark.parametrize("policy", ["Ignore", "Fail"])
def test_helm_bank_vaults_failure_policy(policy: str) -> None:
    runner = Recorder()
    HelmInstaller(runner, which).install_bank_vaults(params(f"bank_vaults.pods_failure_policy={policy}"))
    assert runner.calls == [operator_cmd(), webhook_cmd(policy=policy)]


def test_helm_bank_vaults_versions_namespaces_and_cluster() -> None:
    runner = Recorder()
    p = params(
        "bank_vaults.operator_chart_version=1.23.0",
        "bank_vaults.webhook_chart_version=1.22.2",
        "bank_vaults.namespace=vswh",
        "bank_vaults.webhook_replicas=3",
        "vault.namespace=secrets",
        "timeouts.install=90.5",
        "kube_context=prod-eu",
        "kubeconfig=/home/ops/.kube/fleet",
    )
    result = HelmInstaller(runner, which).install_bank_vaults(p)
    cluster = ["--kubeconfig", "/home/ops/.kube/fleet", "--kube-context", "prod-eu"]
    assert runner.calls == [
        [*operator_cmd("1.23.0", "vswh", "91s"), *cluster],
        [*webhook_cmd("1.22.2", "vswh", 3, "https://vault.secrets:8200", "Ignore", "91s"), *cluster],
    ]
    assert result.versions == {"vault-operator": "1.23.0", "vault-secrets-webhook": "1.22.2"}
    assert result.namespace == "vswh"


# -- Istio with istioctl ---------------------------------------------------------------------------


def istioctl_cmd(hold: str, native: str, cni: str) -> list[str]:
    return [
        ISTIOCTL, "install", "-y", "--set", "profile=default",
        "--set", f"meshConfig.defaultConfig.holdApplicationUntilProxyStarts={hold}",
        "--set", f"values.pilot.env.ENABLE_NATIVE_SIDECARS={native}",
        "--set", f"components.cni.enabled={cni}",
    ]  # fmt: skip


VERSION_CMD = [ISTIOCTL, "version", "--remote=false"]


@pytest.mark.parametrize(
    ("mode", "hold", "native", "cni"),
    [
        ("classic", False, "false", "false"),
        ("classic", True, "false", "false"),
        ("cni", False, "false", "true"),
        ("cni", True, "false", "true"),
        ("native", False, "true", "false"),
        ("native", True, "true", "false"),
    ],
)
def test_istioctl_sidecar_modes(mode: str, hold: bool, native: str, cni: str) -> None:
    runner = Recorder(stdout="client version: 1.30.0\n")
    p = params(f"istio.sidecar_mode={mode}", f"istio.hold_application_until_proxy_starts={str(hold).lower()}")
    result = IstioctlInstaller(runner, which).install_istio(p)
    expected = istioctl_cmd(str(hold).lower(), native, cni)
    assert runner.calls == [VERSION_CMD, expected]
    assert result.commands == (tuple(VERSION_CMD), tuple(expected))
    assert (result.component, result.method, result.namespace) == ("istio", "istioctl", "istio-system")
    assert result.versions == {"istio": "1.30.0"}


def test_istioctl_namespace_and_cluster() -> None:
    runner = Recorder(stdout="1.29.2\n")  # older istioctl print the bare version
    p = params("istio.version=1.29.2", "istio.namespace=mesh-root", "kube_context=c1", "kubeconfig=/k/config")
    IstioctlInstaller(runner, which).install_istio(p)
    assert runner.calls[1] == [
        ISTIOCTL, "install", "-y", "--set", "profile=default",
        "--set", "namespace=mesh-root", "--set", "values.global.istioNamespace=mesh-root",
        "--set", "meshConfig.defaultConfig.holdApplicationUntilProxyStarts=false",
        "--set", "values.pilot.env.ENABLE_NATIVE_SIDECARS=false",
        "--set", "components.cni.enabled=false",
        "--kubeconfig", "/k/config", "--context", "c1",
    ]  # fmt: skip


def test_istioctl_version_mismatch_runs_no_install() -> None:
    runner = Recorder(stdout="client version: 1.28.1\n")
    with pytest.raises(MeshbookError) as info:
        IstioctlInstaller(runner, which).install_istio(params())
    assert str(info.value) == (
        "istioctl at /opt/tools/istioctl is Istio 1.28.1 but istio.version is 1.30.0; install istioctl 1.30.0 "
        "(environment.yml, conda-forge package istioctl) or set istio.version=1.28.1"
    )
    assert runner.calls == [VERSION_CMD]


# -- Istio with its Helm charts --------------------------------------------------------------------

REPO = [
    [HELM, "repo", "add", "istio", "https://istio-release.storage.googleapis.com/charts", "--force-update"],
    [HELM, "repo", "update", "istio"],
]


def istio_chart(
    release: str, chart: str, *, create: bool, version: str = "1.30.0", ns: str = "istio-system"
) -> list[str]:
    cmd = [HELM, "upgrade", "--install", release, f"istio/{chart}", "--version", version, "--namespace", ns]
    return [*cmd, *(["--create-namespace"] if create else []), "--wait", "--timeout", "300s"]


@pytest.mark.parametrize(
    ("mode", "hold", "native", "cni"),
    [
        ("classic", False, "false", "false"),
        ("classic", True, "false", "false"),
        ("cni", False, "false", "true"),
        ("native", True, "true", "false"),
    ],
)
def test_istio_helm_sidecar_modes(mode: str, hold: bool, native: str, cni: str) -> None:
    runner = Recorder()
    p = params(
        "istio.install_method=helm",
        f"istio.sidecar_mode={mode}",
        f"istio.hold_application_until_proxy_starts={str(hold).lower()}",
    )
    result = IstioHelmInstaller(runner, which).install_istio(p)
    istiod = [
        *istio_chart("istiod", "istiod", create=False),
        "--set", f"meshConfig.defaultConfig.holdApplicationUntilProxyStarts={str(hold).lower()}",
        "--set", f"pilot.env.ENABLE_NATIVE_SIDECARS={native}",
        "--set", f"pilot.cni.enabled={cni}",
    ]  # fmt: skip
    cni_chart = [istio_chart("istio-cni", "cni", create=False)] if mode == "cni" else []
    assert runner.calls == [*REPO, istio_chart("istio-base", "base", create=True), *cni_chart, istiod]
    assert (result.method, result.versions) == ("helm", {"istio": "1.30.0"})


def test_istio_helm_version_and_namespace() -> None:
    runner = Recorder()
    p = params("istio.install_method=helm", "istio.version=1.29.0", "istio.namespace=mesh-root", "kube_context=c2")
    IstioHelmInstaller(runner, which).install_istio(p)
    assert runner.calls[2:] == [
        [*istio_chart("istio-base", "base", create=True, version="1.29.0", ns="mesh-root"), "--kube-context", "c2"],
        [
            *istio_chart("istiod", "istiod", create=False, version="1.29.0", ns="mesh-root"),
            "--set", "meshConfig.defaultConfig.holdApplicationUntilProxyStarts=false",
            "--set", "pilot.env.ENABLE_NATIVE_SIDECARS=false",
            "--set", "pilot.cni.enabled=false",
            "--set", "global.istioNamespace=mesh-root",
            "--kube-context", "c2",
        ],
    ]  # fmt: skip


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "call", "tool", "package"),
    [
        (HelmInstaller, "install_bank_vaults", "helm", "kubernetes-helm"),
        (IstioHelmInstaller, "install_istio", "helm", "kubernetes-helm"),
        (IstioctlInstaller, "install_istio", "istioctl", "istioctl"),
    ],
)
def test_missing_binary(make: type, call: str, tool: str, package: str) -> None:
    runner = Recorder()
    with pytest.raises(ToolMissingError) as info:
        getattr(make(runner, no_tools), call)(params())
    assert str(info.value) == (
        f"{tool} not found on PATH; target live needs it. Install it from environment.yml "
        f"(conda-forge package {package}): `conda env update -f environment.yml`, then run again in that environment"
    )
    assert isinstance(info.value, MeshbookError)
    assert info.value.exit_code == ExitCode.BAD_INPUT
    assert runner.calls == []


def test_failed_command_names_it_and_stops() -> None:
    runner = Recorder(returncode=1, stderr="Error: INSTALLATION FAILED: chart not found\n")
    with pytest.raises(MeshbookError) as info:
        HelmInstaller(runner, which).install_bank_vaults(params())
    assert str(info.value) == (
        "`/opt/tools/helm upgrade --install vault-operator oci://ghcr.io/bank-vaults/helm-charts/vault-operator "
        "--version 1.24.0 --namespace vault-system --create-namespace --wait --timeout 300s` exited 1:\n"
        "Error: INSTALLATION FAILED: chart not found"
    )
    assert len(runner.calls) == 1


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        ("Error: UPGRADE FAILED: context deadline exceeded", WaitTimeoutError),
        ("Error: Kubernetes cluster unreachable: Get ...: dial tcp: connection refused", UnreachableError),
    ],
)
def test_failed_command_kinds(stderr: str, kind: type[MeshbookError]) -> None:
    with pytest.raises(kind):
        HelmInstaller(Recorder(returncode=1, stderr=stderr), which).install_bank_vaults(params())


def test_runner_timeout_is_a_wait_timeout() -> None:
    def slow(cmd: list[str]) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired(cmd, 360)

    with pytest.raises(WaitTimeoutError) as info:
        HelmInstaller(slow, which).install_bank_vaults(params())
    assert str(info.value).endswith("--wait --timeout 300s` did not finish in time")


# -- picking the installer -------------------------------------------------------------------------


def test_installer_for_sandbox() -> None:
    api = client.ApiClient()
    try:
        installer = installer_for(load_params(), api)
        assert isinstance(installer, SandboxInstaller)
        assert installer.applier.api is api
    finally:
        api.close()


@pytest.mark.parametrize(("method", "kind"), [("istioctl", IstioctlInstaller), ("helm", IstioHelmInstaller)])
def test_installer_for_live(method: str, kind: type) -> None:
    runner = Recorder(stdout="client version: 1.30.0\n")
    installer = installer_for(params(f"istio.install_method={method}"), client.ApiClient(), runner=runner, which=which)
    assert isinstance(installer, LiveInstaller)
    assert isinstance(installer.istio, kind)
    assert isinstance(installer.bank_vaults, HelmInstaller)
    installer.install_bank_vaults(params())
    assert runner.calls == [operator_cmd(), webhook_cmd()]


def test_installer_for_live_without_tools_fails_on_use_only() -> None:
    installer = installer_for(params(), client.ApiClient(), runner=Recorder(), which=no_tools)
    with pytest.raises(ToolMissingError):
        installer.install_istio(params())


# -- the sandbox installer on a real sandbox --------------------------------------------------------


@pytest.fixture(scope="module")
def fresh_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[client.ApiClient]:
    from meshbook.sandbox import control
    from tests.sandbox.conftest import start_sandbox

    state: Path = tmp_path_factory.mktemp("installers") / "state"
    running = start_sandbox(state)
    try:
        yield running.api
    finally:
        running.api.close()
        control.down(state)


def _refs(objects: list[dict[str, Any]]) -> list[str]:
    out = []
    for obj in objects:
        meta = obj["metadata"]
        where = f"{meta['namespace']}/" if meta.get("namespace") else ""
        out.append(f"{obj['kind']} {where}{meta['name']}")
    return out


@pytest.mark.slow
def test_sandbox_installer_applies_the_charts_objects(fresh_sandbox: client.ApiClient) -> None:
    p = load_params()
    installer = installer_for(p, fresh_sandbox)
    istio = installer.install_istio(p)
    assert (istio.component, istio.method, istio.namespace, istio.commands) == ("istio", "sandbox", "istio-system", ())
    assert istio.versions == {"istio": "1.30.0"}
    assert [item.ref for item in istio.applied] == _refs(istio_objects(p.istio))
    assert all(item.resource_version_before is None for item in istio.applied)

    bank_vaults = installer.install_bank_vaults(p)
    assert (bank_vaults.component, bank_vaults.method, bank_vaults.namespace) == (
        "bank-vaults",
        "sandbox",
        "vault-system",
    )
    assert bank_vaults.versions == {"vault-operator": "1.24.0", "vault-secrets-webhook": "1.23.1"}
    chart = _refs(bank_vaults_objects(p.bank_vaults, "https://vault.vault:8200"))
    assert [item.ref for item in bank_vaults.applied] == ["Namespace vault-system", *chart]

    again = installer.install_bank_vaults(p)  # the namespace exists now: only the chart's objects
    assert [item.ref for item in again.applied] == chart
    assert all(item.resource_version_before is not None for item in again.applied)
