"""The panel's connection view: what the runbook's connections will do, predicted by the connectivity model.

A prediction is the pure model (`meshbook.mesh.connectivity.decide`) applied to the cluster as it will be
once the runbook's steps ran with the panel's toggles: live objects the runbooks do not manage (other
PeerAuthentications, pod labels, the Bank-Vaults namespace's injection label) stay as read, and what the
runbooks apply is taken from the same manifests they apply (`meshbook.manifests.render`, the Bank-Vaults
chart objects). So toggling `vault PERMISSIVE` off before anything is applied predicts scenario 2's
refusal. Nothing here does I/O except `read_live`.

The two connections: the Kubernetes API server calling the webhook (pod creation depends on it) and the
app's containers reaching Vault through vault-env (the init container first: it is the one the scenarios
are about).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from kubernetes import client

from meshbook.bankvaults.chart_objects import WEBHOOK, bank_vaults_objects
from meshbook.kube.apply import Applier
from meshbook.kube.pods import list_pods
from meshbook.manifests import render, vault_addr
from meshbook.manifests.app import APP_CONTAINER, INIT_CONTAINER
from meshbook.manifests.vault import VAULT_NAME, VAULT_PORT
from meshbook.mesh.connectivity import Destination, KubeApiServer, Mesh, PodContainer, Source, Verdict, decide
from meshbook.mesh.injection import injection_enabled
from meshbook.mesh.model_inputs import destination_of_service
from meshbook.params import FailurePolicy, RunbookName, RunbookParams

COLUMNS = ("connection", "verdict", "transport", "mode", "deciding_object", "reason", "consequence")

MESH_LAYOUT: dict[RunbookName, tuple[bool, bool]] = {
    RunbookName.PREREQ_ISTIO: (False, True),
    RunbookName.PREREQ_BANK_VAULTS: (False, True),
    RunbookName.SCENARIO_1: (False, True),
    RunbookName.SCENARIO_2: (True, False),
    RunbookName.SCENARIO_3: (True, True),
}
"""(Vault's namespace in the mesh, the app's namespace in the mesh) once each runbook's steps ran; the
prerequisites show the layout scenario 1 builds next."""

VAULT_LABELS = {"app.kubernetes.io/name": "vault", "vault_cr": VAULT_NAME}
"""The labels the operator gives the Vault pods (used until a live vault-0 says otherwise)."""


@dataclass(frozen=True)
class LiveState:
    """What the prediction takes from the cluster as it is."""

    peer_authentications: Sequence[Mapping[str, Any]] = ()
    namespace_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Labels of the namespaces that exist (of those the runbooks use)."""
    vault_pod_labels: Mapping[str, str] | None = None
    webhook_pod_labels: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Prediction:
    """One connection, its verdict from the model, and what follows from it for the runbook."""

    connection: str
    verdict: Verdict
    consequence: str

    def row(self) -> tuple[str, ...]:
        v = self.verdict
        text = "allowed" if v.allowed else f"refused: {v.failure}"
        return (self.connection, text, v.transport.value, v.mode.value, v.deciding_object, v.reason, self.consequence)


def read_live(api: client.ApiClient, params: RunbookParams) -> LiveState:
    """Read the objects a prediction needs: PeerAuthentications, namespace labels, Vault and webhook pod labels."""
    from meshbook.mesh.explain import peer_authentications

    applier = Applier(api)
    labels: dict[str, Mapping[str, str]] = {}
    for name in (params.bank_vaults.namespace, params.vault.namespace, params.app.namespace):
        live = applier.read("v1", "Namespace", name)
        if live is not None:
            labels[name] = dict((live.get("metadata") or {}).get("labels") or {})

    def first_pod_labels(namespace: str, selector: str) -> Mapping[str, str] | None:
        if namespace not in labels:
            return None
        pods = list_pods(api, namespace, selector)
        return dict(pods[0]["metadata"].get("labels") or {}) if pods else None

    return LiveState(
        peer_authentications=tuple(peer_authentications(api)),
        namespace_labels=labels,
        vault_pod_labels=first_pod_labels(params.vault.namespace, "app.kubernetes.io/name=vault"),
        webhook_pod_labels=first_pod_labels(params.bank_vaults.namespace, f"app.kubernetes.io/name={WEBHOOK}"),
    )


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def planned_policies(params: RunbookParams, live: LiveState) -> list[Mapping[str, Any]]:
    """The PeerAuthentications once the runbooks ran with these parameters (live ones they don't manage kept)."""
    planned: list[Mapping[str, Any]] = list(render("mesh-mtls", params))
    if params.bank_vaults.webhook_permissive:
        planned += render("webhook-permissive", params)
    if params.vault.permissive:
        planned += render("vault-permissive", params)
    managed = {
        (params.istio.namespace, "default"),
        (params.bank_vaults.namespace, WEBHOOK),
        (params.vault.namespace, "default"),
    }
    return [p for p in live.peer_authentications if _key(p) not in managed] + planned


def _webhook_in_mesh(runbook: RunbookName, params: RunbookParams, live: LiveState) -> bool:
    """01 labels the namespace from the parameters; later runbooks find it labelled (or not) already."""
    labels = live.namespace_labels.get(params.bank_vaults.namespace)
    if runbook in (RunbookName.PREREQ_ISTIO, RunbookName.PREREQ_BANK_VAULTS) or labels is None:
        return params.bank_vaults.inject_sidecar
    return injection_enabled(labels)


def webhook_destination(runbook: RunbookName, params: RunbookParams, live: LiveState) -> Destination:
    """The webhook's Service port as the chart creates it, its pods in or out of the mesh."""
    objects = bank_vaults_objects(params.bank_vaults, vault_addr(params))
    service = next(o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == WEBHOOK)
    deployment = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == WEBHOOK)
    template = deployment["spec"]["template"]
    labels = {**template["metadata"]["labels"], **(live.webhook_pod_labels or {})}
    pod = {"metadata": {"labels": labels}, "spec": template["spec"]}  # the chart's pod, not yet injected
    host = f"{WEBHOOK}.{params.bank_vaults.namespace}.svc"
    in_mesh = _webhook_in_mesh(runbook, params, live)
    return destination_of_service(service, service["spec"]["ports"][0], pod, host=host, sidecar=in_mesh)


def vault_port_name(params: RunbookParams) -> str:
    """The operator names Vault's API port for Istio when `istioEnabled` (TLS on, as meshbook's Vault CR has)."""
    return "https-api-port" if params.vault.istio_enabled else "api-port"


def vault_destination(runbook: RunbookName, params: RunbookParams, live: LiveState) -> Destination:
    """Vault's Service as vault-env dials it (`vault-addr`), vault-0 in or out of the mesh per the runbook."""
    ns = params.vault.namespace
    return Destination(
        namespace=ns,
        service=VAULT_NAME,
        port=VAULT_PORT,
        port_name=vault_port_name(params),
        target_port=VAULT_PORT,
        pod=f"{VAULT_NAME}-0",
        pod_labels=dict(live.vault_pod_labels or VAULT_LABELS),
        sidecar=MESH_LAYOUT[runbook][0],
        host=f"{VAULT_NAME}.{ns}",
    )


def app_sources(runbook: RunbookName, params: RunbookParams) -> list[PodContainer]:
    """The app pod's containers that run vault-env, once running (proxy ready), as injected per the toggles."""
    in_mesh = MESH_LAYOUT[runbook][1]
    mode = params.istio.sidecar_mode if in_mesh else None
    pod = f"{params.app.name}-*"  # any pod of the Deployment
    containers = [(INIT_CONTAINER, True)] if params.app.init_container else []
    containers.append((APP_CONTAINER, False))
    return [
        PodContainer(params.app.namespace, pod, name, init_container=init, sidecar_mode=mode, proxy_ready=True)
        for name, init in containers
    ]


def _label(source: Source, destination: Destination, workload: str = "") -> str:
    if isinstance(source, KubeApiServer):
        who = "kube-apiserver"
    else:
        kind = "init container" if source.init_container else "container"
        who = f"{source.namespace}/{workload} {kind} {source.container}"
    return f"{who} → {destination.namespace}/{destination.service}:{destination.port}"


def predict(runbook: RunbookName | str, params: RunbookParams, live: LiveState) -> list[Prediction]:
    """The webhook call and the app's Vault connections after `runbook`'s steps with `params`."""
    name = RunbookName(str(runbook))
    mesh = Mesh(planned_policies(params, live), params.istio.namespace)
    webhook = webhook_destination(name, params, live)
    called = decide(KubeApiServer(), webhook, mesh)
    fail = params.bank_vaults.pods_failure_policy is FailurePolicy.FAIL
    if called.allowed:
        webhook_consequence = "the webhook mutates new pods: vault-env is injected"
    elif fail:
        webhook_consequence = "failurePolicy Fail: the API server rejects every new pod the webhook selects"
    else:
        webhook_consequence = "failurePolicy Ignore: new pods are created unmutated, no secret is injected"
    out = [Prediction(_label(KubeApiServer(), webhook), called, webhook_consequence)]
    vault = vault_destination(name, params, live)
    for source in app_sources(name, params):
        verdict = decide(source, vault, mesh)
        if not called.allowed:
            consequence = "not attempted: " + ("the pod is never created" if fail else "vault-env was not injected")
        elif verdict.allowed:
            consequence = f"{source.container} gets the secret"
        elif source.init_container:
            consequence = f"vault-env in {source.container} gives up: the pod stays in Init (no secret)"
        else:
            consequence = f"vault-env in {source.container} gives up: the container crash-loops (no secret)"
        out.append(Prediction(_label(source, vault, params.app.name), verdict, consequence))
    return out


def prediction_frame(predictions: Sequence[Prediction]) -> pd.DataFrame:
    """The predictions as a table (columns: `COLUMNS`)."""
    return pd.DataFrame([p.row() for p in predictions], columns=list(COLUMNS))
