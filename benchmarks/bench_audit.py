"""`meshbook audit` over the guide's states on one sandbox: recall and false positives, and its speed.

Brings one sandbox through the guide (the states of `tests/audit/states.py`: the three scenarios done
right and each misconfiguration, made and undone), audits each state through the library, and counts:
recall (expected findings found, by code and object) and false positives (error or warning findings no
state expects). Goal: 100 % and 0. Then `meshbook audit` as a user runs it against that sandbox (left in
scenario 3's state), one cluster and a fleet of three contexts (goals, issue 14: under 5 s and 10 s), each
AUDIT_REPEATS times; and the slowest in-library discovery + judgement of a state.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.figures import Figure
from meshbook.audit.codes import Severity
from meshbook.audit.discover import discover
from meshbook.audit.findings import audit
from meshbook.sandbox import control
from tests.audit.states import STATES, Guide
from tests.audit.test_states import merge_kubeconfigs
from tests.sandbox.conftest import start_sandbox

AUDIT_REPEATS = 3
FLEET_REPEATS = 2


def _timed_audit(*args: str) -> tuple[float, int]:
    """Wall seconds and exit code of one `python -m meshbook audit ARGS`."""
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "meshbook", "audit", *args], capture_output=True, text=True, check=False
    )
    return time.monotonic() - start, proc.returncode


def measure() -> list[Figure]:
    expected_total = found_total = false_positives = skipped = 0
    seconds: list[float] = []
    one: list[tuple[float, int]] = []
    fleet: list[tuple[float, int]] = []
    with tempfile.TemporaryDirectory(prefix="meshbook-bench-audit-") as tmp:
        running = start_sandbox(Path(tmp) / "state")
        guide = Guide(running.api, running.info.state_dir, running.kubeconfig)
        try:
            for state in STATES:
                guide.reach(state.scenario)
                state.make(guide)
                try:
                    start = time.monotonic()
                    found = discover(guide.api)
                    result = audit(found)
                    seconds.append(time.monotonic() - start)
                finally:
                    state.undo(guide)
                if state.needs and any(state.needs in g.what and "HTTP 404" in g.reason for g in found.gaps):
                    skipped += 1
                    print(f"  skipped (sandbox serves no {state.needs}): {state.name}")
                    continue
                got = [(f.code, f.subject) for f in result.findings if f.severity is not Severity.INFO]
                hits = {e for e in state.expected if any(c == e[0] and s.startswith(e[1]) for c, s in got)}
                extra = [g for g in got if not any(g[0] == e[0] and g[1].startswith(e[1]) for e in state.expected)]
                expected_total += len(state.expected)
                found_total += len(hits)
                false_positives += len(extra)
                mark = "ok" if len(hits) == len(state.expected) and not extra else "MISSED"
                print(f"  {mark:6} {state.name}: expected {sorted(state.expected)}, extra {extra}", flush=True)
            for n in range(AUDIT_REPEATS):
                one.append(_timed_audit("--kubeconfig", str(running.kubeconfig), "--out", f"{tmp}/one-{n}"))
            fleet_config = Path(tmp) / "fleet.yaml"
            same = {name: running.kubeconfig for name in ("one", "two", "three")}
            fleet_config.write_text(yaml.safe_dump(merge_kubeconfigs(same)))
            for n in range(FLEET_REPEATS):
                args = ("--all-contexts", "--kubeconfig", str(fleet_config), "--out", f"{tmp}/fleet-{n}")
                fleet.append(_timed_audit(*args))
        finally:
            running.api.close()  # type: ignore[no-untyped-call]
            control.down(running.info.state_dir)
    recall = 100.0 * found_total / expected_total if expected_total else 100.0
    states = f"{len(STATES) - skipped} of {len(STATES)} states"
    print(f"  audited {states}: recall {recall:.1f} %, false positives {false_positives}")
    print(f"  meshbook audit, one cluster: {', '.join(f'{s:.2f} s (exit {c})' for s, c in one)}")
    print(f"  meshbook audit, fleet of 3: {', '.join(f'{s:.2f} s (exit {c})' for s, c in fleet)}")
    return [
        Figure.of("audit_recall", [recall], "%", note=states),
        Figure.of("audit_false_positives", [false_positives], "", note=states),
        Figure.of("audit_one_cluster", [s for s, _ in one], "s", note=f"exit codes {sorted({c for _, c in one})}"),
        Figure.of(
            "audit_fleet_of_three",
            [s for s, _ in fleet],
            "s",
            note=f"three contexts of one sandbox; exit codes {sorted({c for _, c in fleet})}",
        ),
        Figure.of(
            "audit_library_slowest", [max(seconds)], "s", "audit in the library (discover + judge), slowest state"
        ),
    ]
