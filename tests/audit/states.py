"""Sandbox states for the audit: the guide's three scenarios done right, and each misconfiguration.

One sandbox is brought through the guide once with meshbook's own library calls; each broken state is a
small change made and undone (`State.make` / `State.undo`), so the tests and the benchmark share the
states and their expected findings (code and subject) as data.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client

from meshbook.kube.apply import Applier
from meshbook.kube.pods import recreate_pods
from meshbook.kube.rollouts import wait_for_rollout
from meshbook.kube.waits import wait_for, wait_for_pod_ready
from meshbook.manifests import namespace, render
from meshbook.mesh.injection import auto_inject
from meshbook.params import RunbookParams, SidecarMode, load_params
from meshbook.podstatus import sidecar_mode
from meshbook.sandbox_install import install_bank_vaults, install_istio

TIMEOUT = 180.0
PA = ("security.istio.io", "v1", "peerauthentications")


class Guide:
    """A sandbox moved forward through the guide: `reach(1|2|3)` is idempotent and only moves forward."""

    def __init__(self, api: client.ApiClient, state_dir: Path, kubeconfig: Path) -> None:
        self.api = api
        self.state_dir = state_dir
        self.kubeconfig = kubeconfig
        self.applier = Applier(api)
        self.params: RunbookParams = load_params()
        self.scenario = 0

    def reach(self, scenario: int) -> None:
        assert scenario >= self.scenario, f"states run in order: at scenario {self.scenario}, asked for {scenario}"
        if self.scenario < 1 <= scenario:
            self._scenario_1()
        if self.scenario < 2 <= scenario:
            auto_inject(self.api, "app", False)
            auto_inject(self.api, "vault", True)
            self._recreate("vault", "app")
        if self.scenario < 3 <= scenario:
            auto_inject(self.api, "app", True)
            self._recreate("app", "vault")
        self.scenario = max(self.scenario, scenario)

    def _scenario_1(self) -> None:
        p, api, applier = self.params, self.api, self.applier
        install_istio(p, applier)
        wait_for_rollout(api, "istio-system", "Deployment", "istiod", TIMEOUT)
        applier.apply_all(render("mesh-mtls", p))
        applier.apply(namespace("vault-system", True))
        applier.apply_all(render("webhook-permissive", p))
        install_bank_vaults(p, applier)
        wait_for_rollout(api, "vault-system", "Deployment", "vault-secrets-webhook", TIMEOUT)
        wait_for_rollout(api, "vault-system", "Deployment", "vault-operator", TIMEOUT)
        applier.apply(namespace("vault", False))
        applier.apply_all(render("rbac", p) + render("vault-cr", p))
        wait_for_pod_ready(api, "vault", "vault-0", TIMEOUT)
        wait_for_rollout(api, "vault", "Deployment", "vault-configurer", TIMEOUT)
        applier.apply_all(render("vault-permissive", p))
        applier.apply(namespace("app", True))
        applier.apply_all(render("app", p))
        wait_for_rollout(api, "app", "Deployment", "app", TIMEOUT)

    def _recreate(self, *namespaces: str) -> None:
        for ns in namespaces:
            recreate_pods(self.api, ns, TIMEOUT)
        wait_for_pod_ready(self.api, "vault", "vault-0", TIMEOUT)
        wait_for_rollout(self.api, "vault", "Deployment", "vault-configurer", TIMEOUT)
        wait_for_rollout(self.api, "app", "Deployment", "app", TIMEOUT)

    # -- small changes, each with its undo ----------------------------------------------------------------

    def delete_policy(self, ns: str, name: str) -> None:
        client.CustomObjectsApi(self.api).delete_namespaced_custom_object(*PA[:2], ns, PA[2], name)

    def apply(self, manifest: str) -> None:
        self.applier.apply_all(render(manifest, self.params))

    def patch_policy_mode(self, ns: str, name: str, mode: str) -> None:
        body = {"spec": {"mtls": {"mode": mode}}}
        client.CustomObjectsApi(self.api).patch_namespaced_custom_object(*PA[:2], ns, PA[2], name, body)

    def set_failure_policy(self, policy: str) -> None:
        api = client.AdmissionregistrationV1Api(self.api)
        name = "vault-secrets-webhook"
        live = self.applier.read("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", name)
        assert live is not None
        changed = copy.deepcopy(live)
        for hook in changed["webhooks"]:
            if hook["name"].startswith("pods."):
                hook["failurePolicy"] = policy
        api.replace_mutating_webhook_configuration(name, changed)

    def patch_app_template(self, metadata: dict[str, Any], *, wait: bool = True) -> None:
        body = {"spec": {"template": {"metadata": metadata}}}
        client.AppsV1Api(self.api).patch_namespaced_deployment("app", "app", body)
        if wait:
            wait_for_rollout(self.api, "app", "Deployment", "app", TIMEOUT)

    def set_istio_enabled(self, on: bool) -> None:
        """The Vault CR's istioEnabled; waits until the operator has renamed Vault's API port."""
        body = {"spec": {"istioEnabled": on}}
        client.CustomObjectsApi(self.api).patch_namespaced_custom_object(
            "vault.banzaicloud.com", "v1alpha1", "vault", "vaults", "vault", body
        )
        wanted = "https-api-port" if on else "api-port"

        def renamed(objects: Any) -> bool:
            ports = [p.get("name") for o in objects for p in (o.get("spec") or {}).get("ports") or []]
            return wanted in ports

        wait_for(
            self.api,
            "Service",
            renamed,
            description=f"Service vault/vault with port {wanted}",
            timeout=TIMEOUT,
            namespace="vault",
            field_selector="metadata.name=vault",
        )

    def set_istiod_tag(self, tag: str) -> None:
        deploy = self.applier.read("apps/v1", "Deployment", "istiod", "istio-system")
        assert deploy is not None
        image = deploy["spec"]["template"]["spec"]["containers"][0]["image"].rsplit(":", 1)[0]
        body = {"spec": {"template": {"spec": {"containers": [{"name": "discovery", "image": f"{image}:{tag}"}]}}}}
        client.AppsV1Api(self.api).patch_namespaced_deployment("istiod", "istio-system", body)

    def sidecar_mode(self, mode: str) -> None:
        """Istio's injector switched to `mode` (classic, cni, native), then the app's pods recreated in it."""
        params = self.params.model_copy(
            update={"istio": self.params.istio.model_copy(update={"sidecar_mode": SidecarMode(mode)})}
        )
        install_istio(params, self.applier)
        if mode != "cni":
            apps = client.AppsV1Api(self.api)
            if self.applier.read("apps/v1", "DaemonSet", "istio-cni-node", "istio-system") is not None:
                apps.delete_namespaced_daemon_set("istio-cni-node", "istio-system")
            self._recreate("app")
            return
        # In CNI mode the app's init container cannot reach Vault: its pod never gets Ready, so wait only
        # until the replacement pod exists with the CNI sidecar layout.
        client.CoreV1Api(self.api).delete_collection_namespaced_pod("app")

        def replaced(pods: Any) -> bool:
            return any(sidecar_mode(p) is SidecarMode.CNI and not p["metadata"].get("deletionTimestamp") for p in pods)

        wait_for(self.api, "Pod", replaced, description="an app pod in CNI mode", timeout=TIMEOUT, namespace="app")

    def delete_cluster_role_binding(self, name: str) -> None:
        client.RbacAuthorizationV1Api(self.api).delete_cluster_role_binding(name)

    def istiod_tag(self) -> str:
        deploy = self.applier.read("apps/v1", "Deployment", "istiod", "istio-system")
        assert deploy is not None
        return str(deploy["spec"]["template"]["spec"]["containers"][0]["image"]).rsplit(":", 1)[-1]


Expected = frozenset[tuple[str, str]]  # (code, subject prefix)


@dataclass(frozen=True)
class State:
    """A state of the guide's cluster: the scenario it starts from, the change and its undo, what the audit finds."""

    name: str
    scenario: int
    expected: Expected
    make: Callable[[Guide], None] = lambda guide: None
    undo: Callable[[Guide], None] = lambda guide: None
    needs: str = ""  # a sandbox feature the state needs, e.g. "subjectaccessreviews"


def _legacy_istio(guide: Guide) -> None:
    guide.saved_tag = guide.istiod_tag()  # type: ignore[attr-defined]
    guide.set_istio_enabled(False)
    guide.set_istiod_tag("1.7.8")


def _current_istio(guide: Guide) -> None:
    guide.set_istiod_tag(guide.saved_tag)  # type: ignore[attr-defined]
    guide.set_istio_enabled(True)


APP = "Pod app/app-"
WEBHOOK = "MutatingWebhookConfiguration vault-secrets-webhook"

STATES: tuple[State, ...] = (
    State("scenario 1 done right", 1, frozenset()),
    State("scenario 2 done right", 2, frozenset()),
    State(
        "scenario 2 without Vault's PERMISSIVE: the app outside the mesh calls a STRICT Vault",
        2,
        frozenset({("MB0103", APP)}),
        lambda g: g.delete_policy("vault", "default"),
        lambda g: g.apply("vault-permissive"),
    ),
    State("scenario 3 done right", 3, frozenset()),
    State(
        "scenario 3 without the webhook's PERMISSIVE, failurePolicy Ignore",
        3,
        frozenset({("MB0101", WEBHOOK)}),
        lambda g: g.delete_policy("vault-system", "vault-secrets-webhook"),
        lambda g: g.apply("webhook-permissive"),
    ),
    State(
        "scenario 3 without the webhook's PERMISSIVE, failurePolicy Fail",
        3,
        frozenset({("MB0101", WEBHOOK)}),
        lambda g: (g.delete_policy("vault-system", "vault-secrets-webhook"), g.set_failure_policy("Fail")),
        lambda g: (g.set_failure_policy("Ignore"), g.apply("webhook-permissive")),
    ),
    State(
        "scenario 3 without Vault's PERMISSIVE: the classic init container cannot reach Vault",
        3,
        frozenset({("MB0102", APP)}),
        lambda g: g.delete_policy("vault", "default"),
        lambda g: g.apply("vault-permissive"),
    ),
    State(
        "scenario 3 with the app's pods skipped by the webhook: literal references",
        3,
        frozenset({("MB0105", APP)}),
        lambda g: g.patch_app_template({"labels": {"security.banzaicloud.io/mutate": "skip"}}),
        lambda g: g.patch_app_template({"labels": {"security.banzaicloud.io/mutate": None}}),
    ),
    State(
        # v1.23.1 mutates a pod whatever its vault-addr (FACTS 4): vault-env then dials an address nothing
        # serves. (Where a release refuses such pods, MB0106 says so: tests/audit/test_rules.py.)
        "scenario 3 with a vault-addr outside the webhook's allowlist that nothing serves",
        3,
        frozenset({("MB0109", "Pod app/app-")}),
        lambda g: g.patch_app_template(
            {"annotations": {"vault.security.banzaicloud.io/vault-addr": "https://vault.elsewhere:8200"}}, wait=False
        ),
        lambda g: g.patch_app_template(
            {"annotations": {"vault.security.banzaicloud.io/vault-addr": "https://vault.vault:8200"}}
        ),
    ),
    State(
        "scenario 3 with mesh-wide PERMISSIVE (hardening)",
        3,
        frozenset({("MB0108", "Namespace istio-system")}),
        lambda g: g.patch_policy_mode("istio-system", "default", "PERMISSIVE"),
        lambda g: g.patch_policy_mode("istio-system", "default", "STRICT"),
    ),
    State(
        "scenario 3 on Istio 1.7 with Vault's API port named api-port (istioEnabled false)",
        3,
        frozenset({("MB0104", APP)}),
        _legacy_istio,
        _current_istio,
    ),
    State(
        "scenario 3 with Vault's service account not bound to system:auth-delegator",
        3,
        frozenset({("MB0107", "ServiceAccount vault/vault")}),
        lambda g: g.delete_cluster_role_binding("vault-auth-delegator"),
        lambda g: g.apply("rbac"),
        needs="subjectaccessreviews",
    ),
    State(
        "scenario 3 with Istio CNI and no port exclusion: the init container's traffic finds no Envoy",
        3,
        frozenset({("MB0102", APP)}),
        lambda g: g.sidecar_mode("cni"),
        lambda g: g.sidecar_mode("classic"),
    ),
)
