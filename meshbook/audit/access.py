"""What the audit may do, as data: the RBAC rules `meshbook manifests auditor-rbac` grants, and nothing more.

Reads only (get, list, watch) of the kinds the audit discovers, never Secrets; and `create` of
SubjectAccessReviews, which the API server answers without storing anything (how the audit asks whether
Vault's service account may review tokens). `tests/audit` checks that discovery needs no more than this.
"""

from __future__ import annotations

from types import MappingProxyType

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
"""The name of the ClusterRole, its binding and the service account (namespace `meshbook-audit`)."""
AUDITOR_NAMESPACE = "meshbook-audit"
