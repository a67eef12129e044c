"""`meshbook lab`: the command line, the environment kernels get, the `jupyter lab` command (no server started)."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meshbook import lab
from meshbook.errors import NotAvailableError
from tests.conftest import CliResult


def test_cli_hands_every_option_to_run_lab(
    run_cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}

    def fake_run_lab(state_dir: Path, **kwargs: Any) -> int:
        seen.update(state_dir=state_dir, **kwargs)
        return 0

    monkeypatch.setattr(lab, "run_lab", fake_run_lab)
    args = ["--state", str(tmp_path / "sb"), "--port", "18123", "--notebook-dir", str(tmp_path), "--token", "t0k"]
    result = run_cli("lab", *args, "--", "--LabApp.expose_app_in_browser=True")
    assert result.code == 0, result.err
    assert seen == {
        "state_dir": (tmp_path / "sb").resolve(),
        "speed": "instant",
        "port": 18123,
        "notebook_dir": tmp_path,
        "token": "t0k",
        "extra": ["--LabApp.expose_app_in_browser=True"],
    }


def test_cli_defaults_to_the_default_sandbox(
    run_cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    from meshbook.sandbox import control

    seen: dict[str, Any] = {}
    monkeypatch.setattr(lab, "run_lab", lambda state_dir, **kw: seen.update(state_dir=state_dir, **kw) or 0)
    assert run_cli("lab").code == 0
    assert seen["state_dir"] == control.default_state_dir()
    assert (seen["port"], seen["notebook_dir"], seen["token"], seen["extra"]) == (None, None, None, [])


def test_missing_jupyterlab_exits_5_before_starting_anything(
    run_cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(lab.importlib.util, "find_spec", lambda name: None)

    def no_sandbox(*args: object, **kwargs: object) -> None:
        raise AssertionError("the sandbox must not start when JupyterLab is missing")

    monkeypatch.setattr("meshbook.sandbox.control.up", no_sandbox)
    result = run_cli("lab", "--state", str(tmp_path / "sb"))
    assert result.code == 5
    assert "meshbook lab needs JupyterLab: pip install 'meshbook[lab]'" in result.err
    with pytest.raises(NotAvailableError):
        lab.start_lab(tmp_path / "kubeconfig", tmp_path)


def test_kernels_get_the_sandbox_and_no_run_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    base = {"PATH": "/usr/bin", "MESHBOOK_RUN_DIR": "/runs/x", "MESHBOOK_RUN_ID": "x", "MESHBOOK_KUBECONFIG": "/old"}
    env = lab.lab_environment(tmp_path / "kubeconfig", base)
    assert env == {"PATH": "/usr/bin", "MESHBOOK_KUBECONFIG": str(tmp_path / "kubeconfig")}


def test_jupyter_command_listens_on_loopback_with_a_token(tmp_path: Path) -> None:
    command = lab.jupyter_command(tmp_path, 18123, "t0k", ["--LabApp.x=1"])
    assert command[:4] == [sys.executable, "-m", "jupyterlab", "--no-browser"]
    assert "--ServerApp.ip=127.0.0.1" in command
    assert "--ServerApp.port=18123" in command and "--ServerApp.port_retries=0" in command
    assert "--IdentityProvider.token=t0k" in command
    assert f"--ServerApp.root_dir={tmp_path}" in command
    assert ("--allow-root" in command) is (os.geteuid() == 0)
    assert command[-1] == "--LabApp.x=1"


def test_free_port_prefers_the_asked_one_unless_taken() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        other = lab.free_port(taken)
        assert other != taken
    assert lab.free_port(other) == other
