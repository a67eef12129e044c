"""The sandbox's lifecycle as a user drives it: up from any folder, status of every sandbox, install
through the current KUBECONFIG, reset to empty, down."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

KUBECTL = "/usr/bin/kubectl"


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHBOOK_") and k != "KUBECONFIG"}
    env["XDG_STATE_HOME"] = str(home / "xdg-state")
    env.update(extra)
    return env


def _meshbook(home: Path, *args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshbook", *args],
        capture_output=True,
        text=True,
        cwd=cwd or home,
        env=_env(home, **env),
        timeout=180,
        check=False,
    )


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    # Every sandbox a test started, wherever its state lives (a running one has its server.json there).
    for state_file in tmp_path.rglob("server.json"):
        _meshbook(tmp_path, "sandbox", "down", "--state", str(state_file.parent))
    assert not list(tmp_path.rglob("server.json")), "a sandbox of this test is still running"


def _kubectl(kubeconfig: Path, *args: str) -> str:
    proc = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True, timeout=60, check=True
    )
    return proc.stdout


def test_up_works_from_a_folder_holding_a_meshbook_folder(home: Path) -> None:
    shadow = home / "work"
    (shadow / "meshbook").mkdir(parents=True)
    (shadow / "meshbook" / "__init__.py").write_text("raise ImportError('the wrong meshbook')\n")
    # The installed `meshbook` command (what a user types), not `python -m`, which would itself import ./meshbook.
    script = Path(sys.executable).parent / "meshbook"
    proc = subprocess.run(
        [str(script), "sandbox", "up"], capture_output=True, text=True, cwd=shadow, env=_env(home), timeout=180
    )
    assert proc.returncode == 0, proc.stderr
    assert "sandbox started" in proc.stdout


def test_status_lists_every_running_sandbox(home: Path) -> None:
    assert _meshbook(home, "sandbox", "status").returncode == 3
    assert _meshbook(home, "sandbox", "up").returncode == 0
    kept = home / "xdg-state" / "meshbook" / "runs" / "kept-run"
    assert _meshbook(home, "sandbox", "up", "--state", str(kept)).returncode == 0
    proc = _meshbook(home, "sandbox", "status")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert sum(line.startswith("sandbox: running at https://127.0.0.1:") for line in lines) == 2, proc.stdout
    assert f"  state {home / 'xdg-state' / 'meshbook' / 'sandbox'}" in lines
    assert f"  export KUBECONFIG={kept / 'kubeconfig'}" in lines


def test_install_uses_the_sandbox_behind_kubeconfig_and_reset_empties_it(home: Path) -> None:
    other = home / "elsewhere"
    up = _meshbook(home, "sandbox", "up", "--state", str(other))
    assert up.returncode == 0, up.stderr
    kubeconfig = other / "kubeconfig"
    # No --state, no default sandbox: the one KUBECONFIG points at is used.
    install = _meshbook(home, "sandbox", "install", "istio", KUBECONFIG=str(kubeconfig))
    assert install.returncode == 0, install.stdout + install.stderr
    assert "istio-system" in _kubectl(kubeconfig, "get", "namespaces", "-o", "name")
    reset = _meshbook(home, "sandbox", "reset", "--state", str(other))
    assert reset.returncode == 0, reset.stderr
    # The same kubeconfig still works, and nothing of the last install is left.
    names = _kubectl(kubeconfig, "get", "namespaces", "-o", "name").split()
    assert names == ["namespace/default", "namespace/kube-node-lease", "namespace/kube-public", "namespace/kube-system"]
    assert not (other / "openbao").exists()


def _files_holding(root: Path, value: str) -> list[Path]:
    """Files under root holding value, plain or base64 (as Secret data is stored)."""
    forms = (value.encode(), base64.b64encode(value.encode()))
    return [p for p in root.rglob("*") if p.is_file() and any(f in p.read_bytes() for f in forms)]


def test_down_deletes_the_vault_keys_unless_asked_to_keep_them(home: Path) -> None:
    """A stopped sandbox leaves no unseal key or root token on disk; `--keep-state` keeps them, and says so."""
    state = home / "xdg-state" / "meshbook" / "sandbox"
    marker = os.urandom(12).hex()  # stands for an unseal key: a value found nowhere else
    assert _meshbook(home, "sandbox", "up").returncode == 0
    kubeconfig = state / "kubeconfig"
    _kubectl(kubeconfig, "create", "namespace", "vault")
    _kubectl(
        kubeconfig,
        "create",
        "secret",
        "generic",
        "vault-unseal-keys",
        "-n",
        "vault",
        f"--from-literal=vault-root={marker}",
    )

    kept = _meshbook(home, "sandbox", "down", "--keep-state")
    assert kept.returncode == 0, kept.stderr
    assert f"unseal keys and root token included) stay in {state}" in kept.stdout
    assert _files_holding(state, marker), "--keep-state kept nothing"
    assert _meshbook(home, "sandbox", "up").returncode == 0
    assert "vault-unseal-keys" in _kubectl(kubeconfig, "get", "secrets", "-n", "vault", "-o", "name")

    gone = _meshbook(home, "sandbox", "down")
    assert gone.returncode == 0, gone.stderr
    assert f"were deleted from {state}" in gone.stdout
    assert _files_holding(state, marker) == []
    assert kubeconfig.exists(), "the kubeconfig stays valid for the next `sandbox up`"
    assert _meshbook(home, "sandbox", "up").returncode == 0
    assert "vault" not in _kubectl(kubeconfig, "get", "namespaces", "-o", "name").split("namespace/")
