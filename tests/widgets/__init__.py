"""Helpers for the panel's tests: a Session with no cluster behind it, pods in the API's JSON shape."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from meshbook.evidence import default_redactor
from meshbook.params import load_params
from meshbook.runbook.context import RunContext
from meshbook.runbook.session import Session


def offline_session(notebook: str, *overrides: str) -> Session:
    """A Session whose ApiClient points nowhere: fine as long as the test replaces what would call it."""
    params = load_params(overrides=list(overrides))
    api = client.ApiClient(client.Configuration(host="https://127.0.0.1:9"))
    return Session(RunContext(params, notebook, api, default_redactor(), None, b"k" * 32))


def pod(
    namespace: str,
    name: str,
    containers: list[str],
    *,
    ready: bool = True,
    inits: list[str] | None = None,
    owner: tuple[str, str] | None = None,
    restarts: int = 0,
) -> dict[str, Any]:
    """A running pod as the API serves it; `owner` is (kind, name) of its controller."""
    meta: dict[str, Any] = {"namespace": namespace, "name": name, "uid": f"uid-{name}", "labels": {}}
    if owner is not None:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "uid": f"uid-{owner[1]}", "controller": True}]
        if owner[0] == "ReplicaSet":
            meta["labels"]["pod-template-hash"] = owner[1].rsplit("-", 1)[1]
    statuses = [
        {
            "name": c,
            "ready": ready,
            "restartCount": restarts,
            "state": {"running": {}} if ready else {"waiting": {"reason": "ContainerCreating"}},
        }
        for c in containers
    ]
    return {
        "metadata": meta,
        "spec": {
            "containers": [{"name": c} for c in containers],
            "initContainers": [{"name": c} for c in inits or []],
        },
        "status": {
            "phase": "Running" if ready else "Pending",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": statuses,
            "initContainerStatuses": [
                {"name": c, "ready": False, "restartCount": 0, "state": {"terminated": {"exitCode": 0}}}
                for c in inits or []
            ],
        },
    }


def scenario_1_pods() -> list[dict[str, Any]]:
    """The pods scenario 1 ends with (vault outside the mesh, the app inside, classic sidecars)."""
    return [
        pod("vault", "vault-0", ["vault", "bank-vaults", "prometheus-exporter"], owner=("StatefulSet", "vault")),
        pod(
            "app",
            "app-5d8f7-x2x2x",
            ["app", "istio-proxy"],
            inits=["istio-init", "copy-vault-env", "init-ubuntu"],
            owner=("ReplicaSet", "app-5d8f7"),
        ),
        pod("kube-system", "other", ["other"]),
    ]
