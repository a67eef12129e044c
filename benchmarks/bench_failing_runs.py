"""How long `meshbook run` takes to say what is wrong: the guide's misconfigurations next to the passing run.

Each variant is `python -m meshbook run` (all five runbooks, a fresh sandbox at speed `instant`, default
timeouts: pods_ready 180 s) with one misconfiguration the guide warns about, timed from outside the
process. A run that sat out its waits would take minutes; the goal is the exit code and the reason in
under 60 s for each failing variant. Figures are printed, never asserted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._util import figure_line, load_line, target_line

TARGET_S = 60.0
RUN_TIMEOUT = 900.0

VARIANTS: dict[str, tuple[str, ...]] = {
    "passing run (defaults)": (),
    "vault.permissive=false": ("vault.permissive=false",),
    "webhook STRICT, pods failurePolicy Fail": (
        "bank_vaults.webhook_permissive=false",
        "bank_vaults.pods_failure_policy=Fail",
    ),
    "CNI sidecars without the exclusion": ("istio.sidecar_mode=cni",),
}


def _run(sets: tuple[str, ...]) -> tuple[float, int]:
    with tempfile.TemporaryDirectory(prefix="meshbook-bench-fail-") as tmp:
        args = [sys.executable, "-m", "meshbook", "run", "--out", str(Path(tmp) / "runs")]
        for item in sets:
            args += ["--set", item]
        env = {**os.environ, "XDG_STATE_HOME": str(Path(tmp) / "state")}
        env.pop("KUBECONFIG", None)
        started = time.monotonic()
        proc = subprocess.run(args, capture_output=True, cwd=tmp, env=env, timeout=RUN_TIMEOUT, check=False)
        return time.monotonic() - started, proc.returncode


def main() -> None:
    print(load_line())
    for label, sets in VARIANTS.items():
        seconds, code = _run(sets)
        line = f"{label} (exit {code})"
        if sets:
            print(target_line(line, seconds, "s", TARGET_S))
        else:
            print(figure_line(line, seconds, "s"))


if __name__ == "__main__":
    main()
