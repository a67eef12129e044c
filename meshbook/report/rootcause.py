"""One root cause per failing notebook: what went wrong, the objects that decided it, and the remedy.

A failure used to show the same sentence three times (in the notebook's reason, then in each failed
delivery's reason). Here it is stated once: the failed records are read in order (the expectations
record the connectivity model's verdict as each failing record's reason, and a failed delivery its
deciding object); the first whose reason is a recognised failure (`advice`) is the root cause, else the
first failed record's reason, else the notebook's own. Everything shown below it ("details") replaces
that sentence by a pointer back to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from meshbook.report.advice import advise
from meshbook.report.outcomes import NotebookOutcome

__all__ = ["ROOT_CAUSE_ABOVE", "RootCause", "root_cause"]

ROOT_CAUSE_ABOVE = "‹the root cause above›"

# Objects a reason names: "PeerAuthentication istio-system/default", "MutatingWebhookConfiguration x",
# the destination a policy "applies to", the "source" pod of a refused connection.
_OBJECT = re.compile(
    r"\b(?P<kind>PeerAuthentication|MutatingWebhookConfiguration|Deployment|StatefulSet|Service|Vault CR|Secret)"
    r" (?P<name>[a-z0-9][a-z0-9.*-]*(?:/[a-z0-9][a-z0-9.*-]*)?)"
)
_DESTINATION = re.compile(r"applies to (?P<name>[a-z0-9.-]+/[a-z0-9.-]+(?::[0-9]+)?)")
_SOURCE = re.compile(r"\bsource (?P<name>[a-z0-9.-]+/[a-z0-9.-]+)")
_LAST_SEEN = re.compile(r"in namespace (?P<namespace>[a-z0-9-]+); last seen: (?P<pods>[^;]+)")
_POD_SEEN = re.compile(r"(?:^|, )(?P<pod>[a-z0-9][a-z0-9.-]*) [0-9]+/[0-9]+ ")


@dataclass(frozen=True)
class RootCause:
    """The single statement a failing notebook's section opens with."""

    problem: str
    """What went wrong, in one or two sentences."""
    evidence: str
    """The recorded reason that decided it (the connectivity model's verdict, a wait's cause), or ""."""
    deciding: list[str] = field(default_factory=list)
    """The objects that decided the outcome, as `Kind namespace/name`."""
    remedy: str = ""
    """What to do; "" when the failure is not one meshbook recognises."""

    def shorten(self, text: str) -> str:
        """`text` with the root cause's evidence replaced by a pointer to it (details never repeat it)."""
        if self.evidence and len(self.evidence) > 20 and self.evidence in text:
            return text.replace(self.evidence, ROOT_CAUSE_ABOVE)
        return text


def _deciding(evidence: str, failed: list[dict[str, Any]]) -> list[str]:
    """The deciding objects the records name (a failed delivery's `deciding_object`, a failed mesh policy's),
    then those the reason's words name (a wait's last seen pods, a refused connection's source)."""
    found: list[str] = []
    for record in failed:
        observed = record.get("observed")
        named = observed.get("deciding_object") if isinstance(observed, dict) else None
        if record.get("kind") in ("secret_delivery", "mesh_policy") and named:
            found.append(str(named))
    found += [f"{m['kind']} {m['name']}" for m in _OBJECT.finditer(evidence)]
    found += [f"destination {m['name']}" for m in _DESTINATION.finditer(evidence)]
    found += [f"source pod {m['name']}" for m in _SOURCE.finditer(evidence)]
    for seen in _LAST_SEEN.finditer(evidence):  # a wait's last view of the pods it waited for
        found += [f"pod {seen['namespace']}/{m['pod']}" for m in _POD_SEEN.finditer(seen["pods"])]
    return list(dict.fromkeys(found))


def root_cause(outcome: NotebookOutcome) -> RootCause | None:
    """The root cause of a failing notebook; None when it did not fail."""
    if not outcome.failing:
        return None
    nb = outcome.notebook
    reasons = [str(r.get("reason") or "") for r in outcome.failed]
    candidates = [text for text in [*reasons, nb.reason, nb.error] if text]
    for text in candidates:
        advice = advise(text)
        if advice is not None:
            return RootCause(advice.problem, text, _deciding(text, outcome.failed), advice.fix)
    if not candidates:
        return RootCause(f"{nb.runbook} did not finish ({nb.outcome}); no reason was recorded.", "")
    evidence = candidates[0]
    return RootCause(
        "Not one of the common failures: the recorded reason below decided it.",
        evidence,
        _deciding(evidence, outcome.failed),
    )
