"""`meshbook manifests auditor-rbac`: a service account that may run `meshbook audit` and nothing more.

The rules are data: reads only (get, list, watch) of the kinds the audit discovers, never Secrets; and
`create` of SubjectAccessReviews, which the API server answers without storing anything (how the audit
asks whether Vault's service account may review tokens). `tests/audit` checks discovery needs no more.
"""

from __future__ import annotations

from types import MappingProxyType

from meshbook.manifests._objects import Manifest, metadata, obj
from meshbook.params import RunbookParams

READ = ("get", "list", "watch")

AUDITOR_RULES = MappingProxyType(
    {
        # api group -> (resources, verbs)
        "": (("namespaces", "pods", "services"), READ),
        "apps": (("deployments", "statefulsets"), READ),
        "security.istio.io": (("peerauthentications",), READ),
        "admissionregistration.k8s.io": (("mutatingwebhookconfigurations",), READ),
        "vault.banzaicloud.com": (("vaults",), READ),
        "authorization.k8s.io": (("subjectaccessreviews",), ("create",)),
    }
)

AUDITOR = "meshbook-auditor"
"""The name of the ClusterRole, its binding and the service account (in namespace `meshbook-audit`)."""
AUDITOR_NAMESPACE = "meshbook-audit"

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
