"""Why a connection works or not, on a live cluster: the connectivity model fed with its objects.

The sandbox decides connections with the same pure model; here its inputs come through the official
client (the pod as injected, its proxy's readiness, the Service port name, the destination's sidecar,
every PeerAuthentication), so a failed expectation names the objects that decided it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes import client

from meshbook.kube.apply import Applier
from meshbook.mesh.connectivity import Destination, KubeApiServer, Mesh, Source, Verdict, decide
from meshbook.mesh.model_inputs import destination_of_service, pod_source, service_port
from meshbook.params import RunbookParams

WEBHOOK_SERVICE = "vault-secrets-webhook"


def _raw(response: Any) -> dict[str, Any]:
    import json

    data: dict[str, Any] = json.loads(response.data)
    return data


def peer_authentications(api: client.ApiClient) -> list[dict[str, Any]]:
    custom = client.CustomObjectsApi(api)
    try:
        found = custom.list_cluster_custom_object("security.istio.io", "v1", "peerauthentications")
    except client.exceptions.ApiException:
        return []
    items: list[dict[str, Any]] = found.get("items", []) if isinstance(found, dict) else []
    return items


def _ready_pods(api: client.ApiClient, namespace: str, selector: Mapping[str, str]) -> list[dict[str, Any]]:
    text = ",".join(f"{k}={v}" for k, v in selector.items())
    pods = _raw(client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=text, _preload_content=False))
    return [p for p in pods.get("items", []) if not p["metadata"].get("deletionTimestamp")]


def service_destination(api: client.ApiClient, namespace: str, name: str, port: int, host: str) -> Destination | str:
    """The model's Destination for a Service port, or a sentence saying why there is none."""
    service = Applier(api).read("v1", "Service", name, namespace)
    if service is None:
        return f"Service {namespace}/{name} does not exist"
    entry = service_port(service, port)
    if entry is None:
        return f"Service {namespace}/{name} has no port {port}"
    pods = _ready_pods(api, namespace, service["spec"].get("selector") or {})
    if not pods:
        return f"Service {namespace}/{name} has no pods"
    return destination_of_service(service, entry, pods[0], host=host)


def judge(api: client.ApiClient, source: Source, destination: Destination, root_namespace: str) -> Verdict:
    return decide(source, destination, Mesh(peer_authentications(api), root_namespace))


def explain_webhook_call(api: client.ApiClient, params: RunbookParams) -> str:
    ns = params.bank_vaults.namespace
    destination = service_destination(api, ns, WEBHOOK_SERVICE, 443, f"{WEBHOOK_SERVICE}.{ns}.svc")
    if isinstance(destination, str):
        return destination
    verdict = judge(api, KubeApiServer(), destination, params.istio.namespace)
    return verdict.reason


def explain_vault_access(api: client.ApiClient, params: RunbookParams, container: str) -> str:
    """The model's reason for the app's `container` -> Vault connection as the cluster stands now."""
    return access_reason(vault_access_verdict(api, params, container))


def access_reason(verdict: Verdict | str) -> str:
    """One line for a failed connection's verdict (a str is already the reason there was none)."""
    if isinstance(verdict, str):
        return verdict
    prefix = "" if not verdict.allowed else "the model allows this connection now (it failed earlier): "
    return prefix + verdict.reason


def vault_access_verdict(api: client.ApiClient, params: RunbookParams, container: str) -> Verdict | str:
    """The model's verdict (with its deciding object) for the app's `container` -> Vault connection, or
    why there is none to judge (no Deployment, no pods, not mutated: then the webhook call's reason)."""
    app = Applier(api).read("apps/v1", "Deployment", params.app.name, params.app.namespace)
    if app is None:
        return f"Deployment {params.app.namespace}/{params.app.name} does not exist"
    selector = (
        (app.get("spec", {}).get("selector") or {}).get("match_labels")
        or (app.get("spec", {}).get("selector") or {}).get("matchLabels")
        or {}
    )
    pods = _ready_pods(api, params.app.namespace, selector)
    if not pods:
        return f"Deployment {params.app.namespace}/{params.app.name} has no pods"
    pod = pods[0]
    inits = [c.get("name") for c in pod["spec"].get("initContainers") or []]
    if "copy-vault-env" not in inits:
        return "the vault-secrets-webhook did not mutate the pod: " + explain_webhook_call(api, params)
    host = f"vault.{params.vault.namespace}"
    destination = service_destination(api, params.vault.namespace, "vault", 8200, host)
    if isinstance(destination, str):
        return destination
    try:
        source = pod_source(pod, container)
    except ValueError as exc:
        return str(exc)
    return judge(api, source, destination, params.istio.namespace)
