"""`backyards sidecar-proxy auto-inject on|off NS` over today's API: the `istio-injection` namespace label.

Istio's injector webhook selects namespaces labelled `istio-injection=enabled` (the sandbox's injector
configuration does the same), so turning injection on sets that label and turning it off removes it, as
the guide's `kubectl label namespace NS istio-injection-` does. Pods already running keep (or lack)
their sidecar until they are recreated.
"""

from __future__ import annotations

from collections.abc import Mapping

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from meshbook.kube.apply import FIELD_MANAGER, AppliedObject, Applier, _api_error
from meshbook.manifests import namespace as namespace_manifest

INJECTION_LABEL = "istio-injection"
INJECTION_ENABLED = "enabled"
MERGE_PATCH = "application/merge-patch+json"


def injection_enabled(labels: Mapping[str, str] | None) -> bool:
    """Whether a namespace with these labels gets sidecars: exactly what the injector's selector matches."""
    return (labels or {}).get(INJECTION_LABEL) == INJECTION_ENABLED


def auto_inject(api: client.ApiClient, namespace: str, on: bool) -> AppliedObject | None:
    """Set (`on`) or remove the namespace's `istio-injection=enabled` label; idempotent.

    Turning on creates a missing namespace (meshbook's namespace template, server-side apply). Turning
    off a missing namespace has nothing to do and returns None. Otherwise the result's `changed` says
    whether the resourceVersion moved: a label already as wanted is left alone, so it does not.
    The change is a JSON merge patch (`null` removes the label), as `kubectl label` sends.
    """
    applier = Applier(api)
    live = applier.read("v1", "Namespace", namespace)
    if live is None:
        return applier.apply(namespace_manifest(namespace, inject=True)) if on else None
    meta = live["metadata"]
    before: str = meta["resourceVersion"]
    labels: dict[str, str] = meta.get("labels") or {}
    if injection_enabled(labels) if on else INJECTION_LABEL not in labels:
        return AppliedObject("v1", "Namespace", None, namespace, before, before)
    body = {"metadata": {"labels": {INJECTION_LABEL: INJECTION_ENABLED if on else None}}}
    namespaces = applier.resource("v1", "Namespace")
    try:
        out = namespaces.patch(body=body, name=namespace, content_type=MERGE_PATCH, field_manager=FIELD_MANAGER)
    except ApiException as exc:
        raise _api_error("label", "Namespace", None, namespace, exc) from None
    return AppliedObject("v1", "Namespace", None, namespace, before, out.metadata.resourceVersion)
