"""`meshbook audit`'s arguments: bad input exits 2 before any kernel or cluster call."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def audit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshbook", "audit", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_all_contexts_of_a_missing_kubeconfig_exits_2_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    proc = audit("--all-contexts", "--kubeconfig", str(missing), "--out", str(tmp_path / "runs"))
    assert proc.returncode == 2, proc.stderr
    assert str(missing) in proc.stderr and "cannot list its contexts" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_a_context_named_twice_exits_2(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    proc = audit("--context", "a", "--context", "a", "--out", str(tmp_path / "runs"))
    assert proc.returncode == 2, proc.stderr
    assert "each context once" in proc.stderr
    assert list((tmp_path / "runs").iterdir()) == []
