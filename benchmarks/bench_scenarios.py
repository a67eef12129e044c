"""The guide's scenarios on an empty sandbox at instant speed: how long until the secret arrives.

Measures, through the library (no kubectl, no notebooks): scenario 1 from an empty sandbox until the
app has printed the secret; scenarios 2 and 3 (label changes and pod recreation) likewise; OpenBao's
start and unseal inside vault-0 as the bank-vaults container logs it; resident memory of the sandbox
server plus its OpenBao process at the end. Goal (issue 4): scenario 1 from empty under 5 s. OpenBao's own
first start is `bench_openbao`'s; vault-0 Ready here also includes the operator's and the kubelet's part.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks._util import proc_status_kib
from benchmarks.figures import Figure
from meshbook.kube.apply import Applier
from meshbook.kube.client import api_client
from meshbook.kube.logs import workload_log
from meshbook.kube.pods import recreate_pods
from meshbook.kube.rollouts import wait_for_rollout
from meshbook.kube.waits import wait_for_pod_ready
from meshbook.manifests import namespace, render
from meshbook.mesh.injection import auto_inject
from meshbook.params import SandboxSpeed, load_params
from meshbook.sandbox import control
from meshbook.sandbox_install import install_bank_vaults, install_istio

TIMEOUT = 120.0


def _until(check: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Poll a cheap condition (a log read) until true; the benchmark measures, it does not test."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.02)


def _bao_pids(state: Path) -> list[int]:
    """The `bao server` processes of the sandbox in `state` (its data directories are under it), not others'."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"bao\x00server" in cmd and str(state).encode() in cmd:
                pids.append(int(proc.name))
    return pids


def measure() -> list[Figure]:
    params = load_params()
    with tempfile.TemporaryDirectory(prefix="meshbook-bench-") as tmp:
        state = Path(tmp) / "state"
        t0 = time.monotonic()
        info, _ = control.up(state, SandboxSpeed.INSTANT)
        up_s = time.monotonic() - t0
        api = api_client(info.kubeconfig)
        applier = Applier(api)
        try:
            start = time.monotonic()
            install_istio(params, applier)
            wait_for_rollout(api, "istio-system", "Deployment", "istiod", TIMEOUT)
            applier.apply_all(render("mesh-mtls", params))
            applier.apply(namespace("vault-system", True))
            applier.apply_all(render("webhook-permissive", params))
            install_bank_vaults(params, applier)
            wait_for_rollout(api, "vault-system", "Deployment", "vault-secrets-webhook", TIMEOUT)
            wait_for_rollout(api, "vault-system", "Deployment", "vault-operator", TIMEOUT)
            prereq_s = time.monotonic() - start
            applier.apply(namespace("vault", False))
            applier.apply_all(render("rbac", params) + render("vault-cr", params))
            vault_start = time.monotonic()
            wait_for_pod_ready(api, "vault", "vault-0", TIMEOUT)
            vault_ready_s = time.monotonic() - vault_start
            applier.apply_all(render("vault-permissive", params))
            applier.apply(namespace("app", True))
            applier.apply_all(render("app", params))
            _until(lambda: "going to sleep..." in _log(api))
            scenario1_s = time.monotonic() - start
            start2 = time.monotonic()
            auto_inject(api, "app", False)
            auto_inject(api, "vault", True)
            recreate_pods(api, "vault", TIMEOUT)
            recreate_pods(api, "app", TIMEOUT)
            _until(lambda: "going to sleep..." in _log(api))
            scenario2_s = time.monotonic() - start2
            start3 = time.monotonic()
            auto_inject(api, "app", True)
            recreate_pods(api, "app", TIMEOUT)
            recreate_pods(api, "vault", TIMEOUT)
            _until(lambda: "going to sleep..." in _log(api))
            scenario3_s = time.monotonic() - start3
            server_kib = proc_status_kib(info.pid, "VmRSS")
            bao_kib = sum(max(0, proc_status_kib(pid, "VmRSS")) for pid in _bao_pids(state))
        finally:
            api.close()  # type: ignore[no-untyped-call]
            control.down(state)
    print(
        f"  sandbox up {up_s:.2f} s, prerequisites {prereq_s:.2f} s, vault-0 Ready {vault_ready_s:.2f} s, "
        f"scenarios {scenario1_s:.2f} / {scenario2_s:.2f} / {scenario3_s:.2f} s",
        flush=True,
    )
    return [
        Figure.of("scenario_1", [scenario1_s], "s"),
        Figure.of("scenario_sandbox_up", [up_s], "s", "scenarios: sandbox up"),
        Figure.of("scenario_prerequisites", [prereq_s], "s", "scenarios: prerequisites (Istio, Bank-Vaults) ready"),
        Figure.of("scenario_vault_ready", [vault_ready_s], "s", "scenarios: vault-0 Ready (operator, OpenBao, unseal)"),
        Figure.of("scenario_2", [scenario2_s], "s", "scenario 2 (relabel, recreate), delivered"),
        Figure.of("scenario_3", [scenario3_s], "s", "scenario 3 (relabel, recreate), delivered"),
        Figure.of("scenario_memory_server", [server_kib / 1024], "MB", "scenarios: sandbox server RSS at the end"),
        Figure.of("scenario_memory_bao", [bao_kib / 1024], "MB", "scenarios: OpenBao RSS at the end"),
    ]


def _log(api: object) -> str:
    try:
        return workload_log(api, "app", "app", "app")  # type: ignore[arg-type]
    except Exception:
        return ""
