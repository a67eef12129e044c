"""`make test`'s wall time and its failures: the command the Makefile's `test` target runs (three xdist
workers on two cores, loadfile; a test checks the two agree), with this interpreter, in the checkout,
timed from outside.

Minutes long, so `python -m benchmarks` runs it only when asked (`--with-suite`, MESHBOOK_BENCH_SUITE=1 or
`python -m benchmarks bench_suite`). Goal (issue 15): under 5 minutes on 2 cores and no failed test.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

from benchmarks._util import ROOT
from benchmarks.figures import Figure

SUITE_TIMEOUT = 3600.0
MAKE_TEST_ARGS = ("-n", "3", "--dist", "loadfile")  # as the Makefile's `test` recipe
COMMAND = ("-m", "pytest", *MAKE_TEST_ARGS, "-q", "-p", "no:cacheprovider")
_COUNT = re.compile(r"(\d+) (failed|errors?)\b")


def failures(summary: str) -> int:
    """Failed plus errored tests from pytest's last summary line (`2 failed, 300 passed, 1 error in ...`)."""
    lines = [line for line in summary.splitlines() if " in " in line and ("passed" in line or "failed" in line)]
    last = lines[-1] if lines else summary
    return sum(int(n) for n, _ in _COUNT.findall(last))


def measure() -> list[Figure]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, *COMMAND], cwd=ROOT, capture_output=True, text=True, timeout=SUITE_TIMEOUT, check=False
    )
    wall = time.monotonic() - started
    tail = proc.stdout.strip().splitlines()[-1:] or ["(no output)"]
    print(f"  pytest exited {proc.returncode}: {tail[0]}")
    failed = failures(proc.stdout)
    if proc.returncode != 0 and failed == 0:
        failed = 1  # collection error, interrupted: the suite did not pass
    note = f"exit {proc.returncode}: {tail[0]}"
    return [Figure.of("make_test", [wall], "s", note=note), Figure.of("make_test_failures", [failed], "", note=note)]
