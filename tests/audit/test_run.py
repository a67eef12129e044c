"""The audit's runs in one process: each kernel's own environment, and a kernel that cannot start."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from meshbook.audit.run import AUDIT_PRELOAD, open_run
from meshbook.errors import MeshbookError
from meshbook.progress import ENV_PROGRESS
from meshbook.runbook.environment import ENV_KUBECONFIG, ENV_RUN_DIR, ENV_RUN_ID
from meshbook.runbook.kernels import IPCKernelManager, kernelspec
from meshbook.runbook.rundir import FAILED_MARKER, RUNNING_MARKER


def test_a_kernel_that_cannot_start_leaves_its_run_incomplete_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(self: IPCKernelManager, **kwargs: Any) -> None:
        raise RuntimeError("no ipykernel here")

    monkeypatch.setattr(IPCKernelManager, "start_kernel", refuse)
    run = open_run(None, "prod", tmp_path)
    with kernelspec(), pytest.raises(RuntimeError, match="no ipykernel here"):
        run.start_kernel(tmp_path)
    assert run.kernel is None
    marker = (run.run_dir.path / FAILED_MARKER).read_text()
    assert "its kernel did not start" in marker and "no ipykernel here" in marker
    assert (run.run_dir.path / RUNNING_MARKER).exists()  # a run that stopped, not one that ended


def test_an_unwritable_out_folder_is_a_storage_error_naming_it(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(MeshbookError, match=str(blocked)):
        open_run(None, None, blocked / "runs")


def test_each_kernel_gets_its_own_run_directory_and_kubeconfig_not_this_process_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_PROGRESS, str(tmp_path / "someone-elses-progress"))
    monkeypatch.delenv(ENV_RUN_DIR, raising=False)
    kubeconfig = tmp_path / "kubeconfig"
    eu, us = open_run(str(kubeconfig), "eu", tmp_path / "eu"), open_run(str(kubeconfig), "us", tmp_path / "us")
    env_eu, env_us = eu.environment(None), us.environment(tmp_path / "progress.jsonl")
    assert (env_eu[ENV_RUN_DIR], env_eu[ENV_RUN_ID]) == (str(eu.run_dir.path), eu.run_dir.run_id)
    assert (env_us[ENV_RUN_DIR], env_us[ENV_RUN_ID]) == (str(us.run_dir.path), us.run_dir.run_id)
    assert env_eu[ENV_KUBECONFIG] == env_us[ENV_KUBECONFIG] == str(kubeconfig.resolve())
    assert ENV_PROGRESS not in env_eu and env_us[ENV_PROGRESS] == str(tmp_path / "progress.jsonl")
    assert (eu.params.kube_context, us.params.kube_context) == ("eu", "us")
    assert ENV_RUN_DIR not in os.environ  # this process's environment is left alone


def test_the_kernel_preloads_the_audits_modules_after_the_runbooks() -> None:
    assert AUDIT_PRELOAD[-2:] == ("import meshbook.audit.notebook", "del meshbook")
