"""`meshbook audit` over the guide's states on one sandbox: recall and false positives, and its speed.

Brings one sandbox through the guide (the states of `tests/audit/states.py`: the three scenarios done
right and each misconfiguration, made and undone), audits each state through the library, and counts:
recall (expected findings found, by code and object) and false positives (error or warning findings no
state expects). Goal: 100 % and 0. Also the time of one discovery + judgement. Prints; never asserts.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks._util import load_line
from meshbook.audit.codes import Severity
from meshbook.audit.discover import discover
from meshbook.audit.findings import audit
from meshbook.sandbox import control
from tests.audit.states import STATES, Guide
from tests.audit.test_states import merge_kubeconfigs
from tests.sandbox.conftest import start_sandbox


def main() -> None:
    print(f"  load: {load_line()}")
    expected_total = found_total = false_positives = skipped = 0
    seconds: list[float] = []
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
                print(f"  {mark:6} {state.name}: expected {sorted(state.expected)}, extra {extra}")
            start = time.monotonic()
            proc = subprocess.run(
                [sys.executable, "-m", "meshbook", "audit", "--kubeconfig", str(running.kubeconfig), "--out", tmp],
                capture_output=True,
                text=True,
                check=False,
            )
            cli_s = time.monotonic() - start
            fleet_config = Path(tmp) / "fleet.yaml"
            same = {name: running.kubeconfig for name in ("one", "two", "three")}
            fleet_config.write_text(yaml.safe_dump(merge_kubeconfigs(same)))
            start = time.monotonic()
            command = [sys.executable, "-m", "meshbook", "audit", "--all-contexts", "--kubeconfig", str(fleet_config)]
            fleet = subprocess.run(
                [*command, "--out", tmp],
                capture_output=True,
                text=True,
                check=False,
            )
            fleet_s = time.monotonic() - start
        finally:
            running.api.close()
            control.down(running.info.state_dir)
    recall = 100.0 * found_total / expected_total if expected_total else 100.0
    print(f"  states audited               {len(STATES) - skipped} of {len(STATES)}")
    print(f"  recall                       {recall:6.1f} %   (goal 100 %)")
    print(f"  false positives              {false_positives:6d}     (goal 0)")
    print(f"  one audit (discover + judge) {max(seconds):6.2f} s   (slowest state)")
    print(
        f"  meshbook audit, one cluster  {cli_s:6.2f} s   (exit {proc.returncode}; kernel, notebook, leak scan, "
        f"reports; target < 5 s: {'met' if cli_s < 5 else 'MISSED'})"
    )
    print(
        f"  meshbook audit, fleet of 3    {fleet_s:6.2f} s   (exit {fleet.returncode}; three contexts of one sandbox; "
        f"target < 10 s: {'met' if fleet_s < 10 else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
