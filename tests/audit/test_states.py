"""The audit over the guide's states on one sandbox: no error in the three scenarios done right, and for each
misconfiguration exactly its finding, naming the right objects (the audit functions called directly)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from meshbook.audit.codes import CHECKS, Severity
from meshbook.audit.discover import Discovery, discover
from meshbook.audit.findings import Audit, Finding, audit
from meshbook.sandbox import control
from tests.audit.states import STATES, Guide, State
from tests.sandbox.conftest import start_sandbox

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def guide(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guide]:
    running = start_sandbox(tmp_path_factory.mktemp("audit"))
    try:
        yield Guide(running.api)
    finally:
        running.api.close()
        control.down(running.info.state_dir)


def found(findings: list[Finding]) -> set[tuple[str, str]]:
    """(code, subject) of each finding that is not a skipped check (MB0100 is info)."""
    return {(f.code, f.subject) for f in findings if f.severity is not Severity.INFO}


def matches(expected: frozenset[tuple[str, str]], findings: list[Finding]) -> bool:
    got = found(findings)
    return len(got) == len(expected) and all(
        any(code == c and subject.startswith(prefix) for c, subject in got) for code, prefix in expected
    )


def audit_state(guide: Guide, state: State) -> Audit:
    guide.reach(state.scenario)
    state.make(guide)
    try:
        return audit(discover(guide.api))
    finally:
        state.undo(guide)


def test_the_table_gives_every_code_a_severity_title_and_remedy() -> None:
    assert all(c.code.startswith("MB01") and c.title and c.remedy for c in CHECKS.values())


def test_an_empty_discovery_finds_nothing() -> None:
    assert audit(Discovery(server="x")).findings == []


@pytest.mark.parametrize("state", STATES, ids=[s.name for s in STATES])
def test_state_has_exactly_its_findings(guide: Guide, state: State) -> None:
    result = audit_state(guide, state)
    lines = "\n".join(f.line() for f in result.findings)
    assert matches(state.expected, result.findings), f"{state.name}: expected {sorted(state.expected)}, got:\n{lines}"
    for finding in result.findings:
        if finding.severity is not Severity.INFO:
            assert finding.objects, finding.line()


def test_each_container_asking_for_a_secret_gets_the_models_verdict(guide: Guide) -> None:
    guide.reach(3)
    result = audit(discover(guide.api))
    verdicts = {(v.container, v.init): v for v in result.containers if v.pod.startswith("app/")}
    assert set(verdicts) == {("init-ubuntu", True), ("app", False)}
    assert all(v.mutated and v.delivered for v in verdicts.values())
    assert "PeerAuthentication vault/default PERMISSIVE" in verdicts["init-ubuntu", True].reason


def test_findings_name_the_deciding_policy(guide: Guide) -> None:
    state = next(s for s in STATES if s.expected == {("MB0102", "Pod app/app-")})
    result = audit_state(guide, state)
    (finding,) = [f for f in result.findings if f.code == "MB0102"]
    assert "init container init-ubuntu" in finding.message
    assert "PeerAuthentication istio-system/default" in finding.objects
    assert finding.line().startswith("Error [MB0102] (Pod app/app-")
