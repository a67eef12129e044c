"""OpenBao killed under a running sandbox: the vault container exits and restarts as a kubelet would
(restart count up, Ready false meanwhile), the unseal sidecar unseals the new server and the app's
secret can be read again; and OpenBao never outlives a killed sandbox server.

Both tests start from the prerequisites and Vault, installed once in a sandbox they share: the first leaves
it as it found it (OpenBao restarted and unsealed), the second, last, kills its server."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.sandbox.conftest import RunningSandbox, running_sandbox
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


@pytest.fixture(scope="module")
def vault_installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningSandbox, Path]]:
    """A sandbox with the prerequisites and the guide's Vault, for both tests (stopped, if still up, after)."""
    state = tmp_path_factory.mktemp("openbao-crash") / "state"
    with running_sandbox(state) as sandbox:
        prerequisites(sandbox, state)
        install_vault(sandbox)
        yield sandbox, state


def test_a_killed_openbao_restarts_its_container_and_is_unsealed_again(
    vault_installed: tuple[RunningSandbox, Path],
) -> None:
    sandbox, state = vault_installed
    sandbox.kubectl("wait", "--for=condition=Ready", "pod/vault-0", "-n", "vault", WAIT)
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


def test_openbao_dies_with_a_killed_sandbox_server(vault_installed: tuple[RunningSandbox, Path]) -> None:
    """Last in this module: the shared sandbox does not survive it."""
    sandbox, state = vault_installed
    sandbox.kubectl("wait", "--for=condition=Ready", "pod/vault-0", "-n", "vault", WAIT)  # OpenBao is up
    bao = _bao(state)
    psutil.Process(sandbox.info.pid).kill()
    bao.wait(timeout=60)
    assert not bao.is_running()
