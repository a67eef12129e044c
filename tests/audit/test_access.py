"""The auditor's RBAC grants exactly what discovery reads: no Secret, no write but SubjectAccessReview."""

from __future__ import annotations

from meshbook.audit.discover import LISTS
from meshbook.manifests import render
from meshbook.manifests.auditor import AUDITOR_RULES, READ
from meshbook.params import load_params


def test_no_rule_reaches_secrets_or_writes_anything_but_access_reviews() -> None:
    for group, (resources, verbs) in AUDITOR_RULES.items():
        assert "secrets" not in resources and "*" not in resources
        assert set(verbs) <= set(READ) or (group, resources, verbs) == (
            "authorization.k8s.io",
            ("subjectaccessreviews",),
            ("create",),
        )


def test_every_list_the_audit_makes_is_granted() -> None:
    granted = {
        f"{resource}.{group}" if group else resource
        for group, (resources, verbs) in AUDITOR_RULES.items()
        if "list" in verbs
        for resource in resources
    }
    listed = {entry.what for entry in LISTS}
    assert listed == granted


def test_the_manifest_is_the_rules() -> None:
    (role,) = [o for o in render("auditor-rbac", load_params()) if o["kind"] == "ClusterRole"]
    assert {r["apiGroups"][0]: (tuple(r["resources"]), tuple(r["verbs"])) for r in role["rules"]} == dict(AUDITOR_RULES)
