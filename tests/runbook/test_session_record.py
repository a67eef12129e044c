"""Session.record: kinds and outcomes from the evidence vocabulary, and finish() judging step records by it."""

from __future__ import annotations

import pytest

from meshbook.errors import ExpectationFailed
from meshbook.evidence import Kind, RecordOutcome
from tests.widgets import offline_session


def test_record_keeps_plain_words_whether_given_enums_or_text() -> None:
    session = offline_session("10-scenario-1")
    session.record(Kind.NAMESPACE, "app", outcome=RecordOutcome.INFO, observed={"injection": True})
    session.record("action", "app", outcome="skip", reason="mode check")
    kept = [(r["kind"], r["outcome"]) for r in session.context.records]
    assert kept == [("namespace", "info"), ("action", "skip")]
    assert all(type(r["kind"]) is str and type(r["outcome"]) is str for r in session.context.records)


@pytest.mark.parametrize(("kind", "outcome"), [("pods", "info"), ("action", "ok")])
def test_record_refuses_words_outside_the_vocabulary(kind: str, outcome: str) -> None:
    session = offline_session("10-scenario-1")
    with pytest.raises(ValueError) as caught:
        session.record(kind, "app", outcome=outcome)
    assert str(caught.value) == (
        f"evidence record 'app': kind {kind!r} must be one of pod_state, secret_delivery, mesh_policy, namespace, "
        f"install, vault_status, action, finding and outcome {outcome!r} one of pass, fail, info, skip; use "
        "meshbook.evidence.Kind and RecordOutcome"
    )
    assert session.context.records == []


def test_finish_fails_on_a_failed_step_record() -> None:
    session = offline_session("10-scenario-1")
    session.record("action", "app/app", outcome="fail", reason="Deployment app/app: replicas 1 -> 2")
    session.record("action", "app/other", outcome="info")
    with pytest.raises(ExpectationFailed, match=r"1 expectation\(s\) failed: Deployment app/app: replicas 1 -> 2"):
        session.finish()
