"""OpenBao killed under a running sandbox: the vault container exits and restarts as a kubelet would
(restart count up, Ready false meanwhile), the unseal sidecar unseals the new server and the app's
secret can be read again; and OpenBao never outlives a killed sandbox server."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import psutil
import pytest

from tests.sandbox.conftest import RunningSandbox
from tests.sandbox.test_scenarios import WAIT, install_vault, prerequisites

pytestmark = pytest.mark.slow


def _bao(state: Path) -> psutil.Process:
    found = [
        p
        for p in psutil.process_iter(["cmdline"])
        if "server" in (p.info["cmdline"] or [])
        and str(state) in " ".join(p.info["cmdline"] or [])
        and (p.info["cmdline"] or [""])[0].endswith("bao")
    ]
    assert len(found) == 1, found
    return found[0]


def _vault_container(sandbox: RunningSandbox) -> dict[str, object]:
    pod = json.loads(sandbox.kubectl("get", "pod", "vault-0", "-n", "vault", "-o", "json").stdout)
    (status,) = [s for s in pod["status"]["containerStatuses"] if s["name"] == "vault"]
    return dict(status)


def test_a_killed_openbao_restarts_its_container_and_is_unsealed_again(cluster: tuple[RunningSandbox, Path]) -> None:
    sandbox, state = cluster
    prerequisites(sandbox, state)
    install_vault(sandbox)
    before = _vault_container(sandbox)
    bao = _bao(state)
    bao.send_signal(signal.SIGKILL)
    bao.wait(timeout=30)
    # The kubelet notices, restarts the container; Ready comes back once the new server is unsealed.
    sandbox.kubectl(
        "wait", "--for=jsonpath={.status.containerStatuses[?(@.name=='vault')].restartCount}="
        + str(int(before["restartCount"]) + 1), "pod/vault-0", "-n", "vault", WAIT,
    )  # fmt: skip
    sandbox.kubectl("wait", "--for=condition=Ready", "pod/vault-0", "-n", "vault", WAIT)
    after = _vault_container(sandbox)
    assert after["ready"] is True
    last = after["lastState"]["terminated"]  # type: ignore[index]
    assert last["exitCode"] == 1
    assert _bao(state).pid != bao.pid
    log = sandbox.kubectl("logs", "vault-0", "-n", "vault", "-c", "vault", "--previous").stdout
    assert "OpenBao server exited" in log


def test_openbao_dies_with_a_killed_sandbox_server(cluster: tuple[RunningSandbox, Path]) -> None:
    sandbox, state = cluster
    prerequisites(sandbox, state)
    install_vault(sandbox)
    bao = _bao(state)
    psutil.Process(sandbox.info.pid).kill()
    bao.wait(timeout=60)
    assert not bao.is_running()
