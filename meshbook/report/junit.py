"""junit.xml: a testsuite per notebook, a testcase per expectation, for CI test views.

Testcases are the notebook itself (its outcome from summary.json) and every `pod_state`,
`secret_delivery` and `mesh_policy` record whose outcome is pass or fail. A notebook that ended with an
expectation failure is a `<failure>`; one that ended with another error (timeout, unreachable cluster,
dead kernel) is an `<error>`; a notebook not run is `<skipped>`. Names stay stable across runs (pods by
workload, numbered when a workload has several), so CI can track a testcase's history.

The shape is the common JUnit schema: testsuites/testsuite[@name,@tests,@failures,@errors,@time]/
(properties/property[@name,@value], testcase[@classname,@name,@time]/failure[@message]); the properties
are the report header (meshbook, cluster, versions, changed parameters, leak scan scope). Text is
stripped of characters XML 1.0 forbids.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from meshbook.evidence import Kind, RecordOutcome
from meshbook.report.audit import audit_suites
from meshbook.report.header import header_rows
from meshbook.report.load import printable
from meshbook.report.rows import workload_of
from meshbook.report.rundir import RunData

__all__ = ["TESTCASE_KINDS", "render_junit"]

TESTCASE_KINDS = (Kind.POD_STATE, Kind.SECRET_DELIVERY, Kind.MESH_POLICY)
FAILURE_ERRORS = {"ExpectationFailed", ""}
MESSAGE_LIMIT = 1000

Row = dict[str, Any]


def _s(text: Any) -> str:
    return printable(text)


def _case_name(record: Row, seen: dict[str, int]) -> str:
    kind, subject = str(record["kind"]), str(record["subject"])
    if kind == "pod_state":
        namespace, _, pod = subject.partition("/")
        base = f"pod {namespace}/{workload_of(pod)}" if pod else f"pod {subject}"
        expected = record["expected"].get("ready") if isinstance(record["expected"], dict) else None
        base += f" READY {expected}" if expected else ""
    elif kind == "secret_delivery":
        base = f"secret delivered to {subject}"
    else:
        base = f"mesh policy {subject}"
    name = f"{record['step']}: {base}"
    seen[name] = seen.get(name, 0) + 1
    return name if seen[name] == 1 else f"{name} #{seen[name]}"


def _observed_text(record: Row) -> str:
    observed = record["observed"] if isinstance(record["observed"], dict) else {}
    if record["kind"] == "pod_state":
        return (
            f"pod {record['subject']}: READY {observed.get('ready')}, {observed.get('status', observed.get('phase'))}, "
            f"sidecar {observed.get('sidecar')}, restarts {observed.get('restarts')}"
        )
    if record["kind"] == "secret_delivery":
        return (
            f"container {observed.get('container')}: delivered {observed.get('delivered')}, matches_vault "
            f"{observed.get('matches_vault')}, fingerprint {observed.get('fingerprint')}"
        )
    return f"{record['subject']}: mode {observed.get('mode')}, expected {record['expected']}"


def _suite(run: RunData, notebook: str, suite_name: str) -> ET.Element:
    nb = run.notebook(notebook)
    seconds = nb.seconds if nb else 0.0
    suite = ET.Element("testsuite", name=suite_name)
    properties = ET.SubElement(suite, "properties")  # the report header: what was tested, where
    for label, value in header_rows(run):
        ET.SubElement(properties, "property", name=_s(label), value=_s(value))
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    classname = f"meshbook.{notebook}"
    seen: dict[str, int] = {}
    for record in run.records_of(notebook):
        if record["kind"] not in TESTCASE_KINDS or record["outcome"] not in (RecordOutcome.PASS, RecordOutcome.FAIL):
            continue
        case = ET.SubElement(suite, "testcase", classname=classname, name=_s(_case_name(record, seen)), time="0.000")
        counts["tests"] += 1
        if record["outcome"] == RecordOutcome.FAIL:
            counts["failures"] += 1
            message = _s(record["reason"] or f"{record['kind']} {record['subject']} failed")
            failure = ET.SubElement(case, "failure", message=message[:MESSAGE_LIMIT], type=str(record["kind"]))
            failure.text = _s(f"{message}\n{_observed_text(record)}")
        else:
            ET.SubElement(case, "system-out").text = _s(_observed_text(record))
    case = ET.SubElement(suite, "testcase", classname=classname, name=f"notebook {notebook}", time=f"{seconds:.3f}")
    counts["tests"] += 1
    outcome = nb.outcome if nb else "unknown"
    if outcome == "skipped":
        counts["skipped"] += 1
        ET.SubElement(case, "skipped", message=_s(nb.reason if nb else "not run")[:MESSAGE_LIMIT])
    elif outcome != "pass":
        where = f" (cell {nb.cell})" if nb and nb.cell is not None else ""
        reason = _s(
            (f"{nb.error}{where}: {nb.reason}" if nb else "") or f"{notebook}: outcome {outcome} (run did not finish)"
        )
        is_failure = nb is not None and nb.outcome == "fail" and nb.error in FAILURE_ERRORS
        counts["failures" if is_failure else "errors"] += 1
        element = ET.SubElement(
            case, "failure" if is_failure else "error", message=reason[:MESSAGE_LIMIT], type=_s(nb.error if nb else "")
        )
        element.text = reason
    for key in ("tests", "failures", "errors", "skipped"):
        suite.set(key, str(counts[key]))
    suite.set("time", f"{seconds:.3f}")
    return suite


def render_junit(runs: Sequence[RunData]) -> str:
    """junit.xml text; with several runs every suite name is prefixed with its run id."""
    root = ET.Element("testsuites", name="meshbook")
    for run in runs:
        for nb in run.notebooks:
            name = nb.runbook if len(runs) == 1 else f"{run.run_id}/{nb.runbook}"
            root.append(_suite(run, nb.runbook, name))
    root.extend(audit_suites(runs))  # `meshbook audit`: a testcase per context and check
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(sum(int(s.get(key, "0")) for s in root)))
    root.set("time", f"{sum(float(s.get('time', '0')) for s in root):.3f}")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
