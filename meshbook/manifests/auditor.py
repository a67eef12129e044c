"""`meshbook manifests auditor-rbac`: a service account that may run `meshbook audit` and nothing more."""

from __future__ import annotations

from meshbook.audit.access import AUDITOR, AUDITOR_NAMESPACE, AUDITOR_RULES
from meshbook.manifests._objects import Manifest, metadata, obj
from meshbook.params import RunbookParams

RBAC_API = "rbac.authorization.k8s.io/v1"


def auditor_rbac(params: RunbookParams) -> list[Manifest]:
    """Namespace, ServiceAccount, ClusterRole (the audit's reads, no Secrets) and its ClusterRoleBinding."""
    rules = [
        {"apiGroups": [group], "resources": list(resources), "verbs": list(verbs)}
        for group, (resources, verbs) in AUDITOR_RULES.items()
    ]
    subject = {"kind": "ServiceAccount", "name": AUDITOR, "namespace": AUDITOR_NAMESPACE}
    return [
        obj("v1", "Namespace", metadata(AUDITOR_NAMESPACE)),
        obj("v1", "ServiceAccount", metadata(AUDITOR, AUDITOR_NAMESPACE)),
        obj(RBAC_API, "ClusterRole", metadata(AUDITOR), rules=rules),
        obj(
            RBAC_API,
            "ClusterRoleBinding",
            metadata(AUDITOR),
            roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": AUDITOR},
            subjects=[subject],
        ),
    ]
