"""`make run` passes a relative `--out runs`: notebooks run in their own directory, so the runner must
hand them absolute paths (regression: every notebook failed with 'No such file or directory')."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_relative_out_directory(tmp_path: Path) -> None:
    env_home = {"XDG_STATE_HOME": str(tmp_path / "state"), "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "meshbook", "run", "--out", "runs", "--only", "00-prereq-istio"],
        cwd=tmp_path,
        env=env_home,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    latest = tmp_path / "runs" / "latest"
    summary = json.loads((latest / "summary.json").read_text())
    assert [n["outcome"] for n in summary["notebooks"]] == ["pass"]
    assert (latest / "evidence.jsonl").read_text().count("\n") > 0
