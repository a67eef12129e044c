"""The audit's rules: from the discovered objects to findings (codes in `codes.py`) and container verdicts.

Pure: every rule reads a `Discovery`. Who reaches whom is the connectivity model's answer
(`meshbook.mesh.connectivity.decide`, inputs read by `mesh.model_inputs`, the very code the sandbox and
`explain` use); pod readiness and sidecar mode are `meshbook.podstatus`'s. A container that asks for a
secret gets one verdict: unmutated (its literal `vault:` reference reaches the program), or the model's
prediction of its connection to the Vault address the webhook gave it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from meshbook.audit.codes import CHECKS, Severity
from meshbook.audit.discover import Discovery, Obj
from meshbook.audit.reading import (
    ANNOTATION,
    DEFAULT_VAULT_ADDR,
    ROOT_NAMESPACE,
    WEBHOOK_NAME,
    bank_vaults_webhooks,
    env_of,
    last_error,
    mesh_of,
    mutated,
    name_of,
    ready_behind,
    secret_containers,
)
from meshbook.bankvaults.webhook_releases import release_of
from meshbook.mesh.connectivity import (
    TLS_TO_HTTP,
    KubeApiServer,
    Mesh,
    PodContainer,
    PortProtocol,
    Verdict,
    decide,
    resolve_mtls,
)
from meshbook.mesh.model_inputs import destination_of_service, pod_source, service_port
from meshbook.params import PeerAuthenticationMode
from meshbook.podstatus import condition_true, is_terminating, sidecar_mode


@dataclass(frozen=True)
class Finding:
    """One finding: its code, the object it is about and the objects that decide it, in one sentence."""

    code: str
    subject: str  # e.g. "Pod app/app-7d9c-x"
    message: str
    objects: tuple[str, ...] = ()

    @property
    def severity(self) -> Severity:
        return CHECKS[self.code].severity

    @property
    def title(self) -> str:
        return CHECKS[self.code].title

    @property
    def remedy(self) -> str:
        return CHECKS[self.code].remedy

    def line(self) -> str:
        """As `istioctl analyze` prints: `Error [MB0101] (Pod app/app-x) message`."""
        return f"{self.severity.value} [{self.code}] ({self.subject}) {self.message}"


@dataclass(frozen=True)
class ContainerVerdict:
    """A container that asks for a secret: what the model predicts and what the pod shows."""

    pod: str  # namespace/name
    container: str
    init: bool
    mutated: bool
    vault_addr: str
    delivered: bool | None  # None: no prediction (unmutated, or no Vault to dial)
    reason: str
    last_error: str = ""


@dataclass
class Audit:
    """The result of one audit: findings in a stable order, and each container's verdict."""

    server: str
    findings: list[Finding] = field(default_factory=list)
    containers: list[ContainerVerdict] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]


def _webhook_findings(found: Discovery, mesh: Mesh) -> list[Finding]:
    findings = []
    for hook in bank_vaults_webhooks(found):
        subject = f"MutatingWebhookConfiguration {hook.configuration}"
        consequence = (
            "pods are admitted unmutated (failurePolicy Ignore) and their containers read the literal vault: reference"
            if hook.failure_policy == "Ignore"
            else "pod creation is refused (failurePolicy Fail)"
        )
        objects: tuple[str, ...]
        if hook.service is None:
            reason, objects = f"its Service {hook.namespace}/{WEBHOOK_NAME} does not exist", ()
        else:
            pods = ready_behind(found, hook.service)
            ref = f"Service {name_of(hook.service)}"
            if not pods:
                reason, objects = f"{ref} has no ready endpoints", (ref,)
            else:
                entry = service_port(hook.service, 443) or (hook.service["spec"].get("ports") or [{"port": 443}])[0]
                destination = destination_of_service(hook.service, entry, pods[0], host=f"{name_of(hook.service)}.svc")
                verdict = decide(KubeApiServer(), destination, mesh)
                if verdict.allowed:
                    continue
                reason, objects = verdict.reason, (verdict.deciding_object, ref)
        findings.append(
            Finding("MB0101", subject, f"webhook {hook.name}: {reason}; {consequence}", tuple(o for o in objects if o))
        )
    return findings


# -- containers -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Prediction:
    """A container's connection to Vault: the model's verdict, or why there is none (`failure`: it fails
    before the mesh matters, e.g. no Service; both None: an address outside the cluster, not judged)."""

    verdict: Verdict | None
    failure: str | None
    reason: str
    objects: tuple[str, ...] = ()

    @property
    def delivered(self) -> bool | None:
        if self.verdict is not None:
            return self.verdict.allowed
        return False if self.failure else None


def _vault_target(address: str, namespace: str) -> tuple[str, str, int, str] | None:
    """`https://vault.vault:8200` -> (service, namespace, port, host) as vault-env dials it; None outside the
    cluster (a name that is not `svc`, `svc.ns` or `svc.ns.svc[.cluster.local]`)."""
    parts = urlsplit(address)
    host = parts.hostname or ""
    labels = host.split(".")
    if not host or (len(labels) > 2 and labels[2] != "svc"):
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return labels[0], labels[1] if len(labels) > 1 else namespace, port, host


def _predict(found: Discovery, mesh: Mesh, pod: Obj, container: str, address: str) -> _Prediction:
    target = _vault_target(address, str(pod["metadata"]["namespace"]))
    if target is None:
        return _Prediction(None, None, f"{address} is outside the cluster: not judged")
    service_name, service_namespace, port, host = target
    service = found.service(service_namespace, service_name)
    if service is None:
        reason = f"Service {service_namespace}/{service_name} ({address}) does not exist"
        # What decides it is the address the pod was given (its VAULT_ADDR, from the vault-addr annotation).
        return _Prediction(None, f"dial tcp: lookup {host}: no such host", reason, (f"Pod {name_of(pod)}",))
    ref = f"Service {name_of(service)}"
    entry = service_port(service, port)
    behind = ready_behind(found, service)
    if entry is None or not behind:
        what = f"has no port {port}" if entry is None else "has no ready endpoints"
        return _Prediction(None, "connection refused", f"{ref} {what}", (ref,))
    destination = destination_of_service(service, entry, behind[0], host=host)
    try:
        source = pod_source(pod, container)
        if not source.init_container and not condition_true(pod, "Initialized"):
            # The main containers have not started: judge them as they will run, beside a started proxy.
            source = PodContainer.from_pod(pod, container, proxy_ready=True)
    except ValueError as exc:
        return _Prediction(None, None, str(exc))
    verdict = decide(source, destination, mesh)
    return _Prediction(verdict, verdict.failure, verdict.reason, (verdict.deciding_object, ref))


def _refusal_code(verdict: Verdict | None, pod: Mapping[str, Any], init: bool, mesh: Mesh) -> str:
    if verdict is None:
        return "MB0109"
    if verdict.failure == TLS_TO_HTTP and mesh.legacy_sniffing and verdict.protocol is PortProtocol.AUTO:
        return "MB0104"
    if sidecar_mode(pod) is None:
        return "MB0103"
    return "MB0102" if init else "MB0109"


def _container_findings(
    found: Discovery, mesh: Mesh, default_addr: str
) -> tuple[list[Finding], list[ContainerVerdict]]:
    findings: list[Finding] = []
    verdicts: list[ContainerVerdict] = []
    for pod in sorted(found.pods, key=name_of):
        if is_terminating(pod) or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        asking = list(secret_containers(pod))
        unmutated = [c["name"] for c, _ in asking if not mutated(pod, c)]
        subject = f"Pod {name_of(pod)}"
        if unmutated:
            findings.append(
                Finding(
                    "MB0105",
                    subject,
                    f"container(s) {', '.join(unmutated)} hold vault: references but the webhook did not mutate the "
                    "pod, so the program reads the literal reference instead of the secret",
                    (subject,),
                )
            )
        annotations = pod["metadata"].get("annotations") or {}
        for container, init in asking:
            was_mutated = mutated(pod, container)
            address = env_of(container).get("VAULT_ADDR") or annotations.get(ANNOTATION + "vault-addr") or default_addr
            if not was_mutated:
                verdicts.append(
                    ContainerVerdict(name_of(pod), container["name"], init, False, address, None, "not mutated")
                )
                continue
            predicted = _predict(found, mesh, pod, container["name"], address)
            last = last_error(pod, container["name"])
            verdicts.append(
                ContainerVerdict(
                    name_of(pod), container["name"], init, True, address, predicted.delivered, predicted.reason, last
                )
            )
            if predicted.delivered is False:
                kind = "init container" if init else "container"
                findings.append(
                    Finding(
                        _refusal_code(predicted.verdict, pod, init, mesh),
                        subject,
                        f"{kind} {container['name']} -> {address}: {predicted.failure}: {predicted.reason}",
                        tuple(o for o in predicted.objects if o),
                    )
                )
    return findings, verdicts


# -- workloads, Vault, mesh -------------------------------------------------------------------------------------


def _address_findings(found: Discovery) -> list[Finding]:
    """A pod template's vault-addr must equal the webhook's VAULT_ADDR or be in VAULT_ADDR_ALLOWLIST, where
    the webhook's release checks pods (upstream main; v1.23.1 does not, FACTS 4)."""
    hooks = bank_vaults_webhooks(found)
    if not hooks:
        return []
    findings = []
    for kind, workloads in (("Deployment", found.deployments), ("StatefulSet", found.statefulsets)):
        for workload in sorted(workloads, key=name_of):
            template = workload["spec"]["template"]
            address = (template["metadata"].get("annotations") or {}).get(ANNOTATION + "vault-addr")
            if address is None or not any(True for _ in secret_containers(template)):
                continue
            for hook in hooks:
                if not release_of(hook.image).checks_pod_vault_addr:
                    continue  # this release mutates the pod anyway: where the address leads is judged per container
                allowed = {hook.env.get("VAULT_ADDR", DEFAULT_VAULT_ADDR)}
                allowed |= {a.strip() for a in hook.env.get("VAULT_ADDR_ALLOWLIST", "").split(",") if a.strip()}
                if address not in allowed:
                    findings.append(
                        Finding(
                            "MB0106",
                            f"{kind} {name_of(workload)}",
                            f"vault-addr {address} is neither the webhook's VAULT_ADDR "
                            f"{hook.env.get('VAULT_ADDR', DEFAULT_VAULT_ADDR)} nor in its VAULT_ADDR_ALLOWLIST, so "
                            "the webhook refuses its pods",
                            (f"{kind} {name_of(workload)}", f"MutatingWebhookConfiguration {hook.configuration}"),
                        )
                    )
                    break
    return findings


def _auth_delegator_findings(found: Discovery) -> list[Finding]:
    return [
        Finding(
            "MB0107",
            f"ServiceAccount {review.service_account}",
            "may not create tokenreviews.authentication.k8s.io (SubjectAccessReview: "
            f"{review.reason or 'no rule allows it'}), so Vault's Kubernetes auth cannot verify a pod's token",
            (f"ServiceAccount {review.service_account}",),
        )
        for review in found.access_reviews
        if not review.allowed
    ]


def _mesh_findings(found: Discovery, mesh: Mesh) -> list[Finding]:
    if not any(d["metadata"]["name"] == "istiod" for d in found.deployments):
        return []
    mesh_wide = resolve_mtls(mesh.peer_authentications, ROOT_NAMESPACE, ROOT_NAMESPACE, {}, 0)
    if mesh_wide.mode is PeerAuthenticationMode.STRICT:
        return []
    return [
        Finding(
            "MB0108",
            f"Namespace {ROOT_NAMESPACE}",
            f"mesh-wide mode is {mesh_wide.mode.value} ({mesh_wide.deciding_object})",
            (mesh_wide.deciding_object,),
        )
    ]


def _gap_findings(found: Discovery) -> list[Finding]:
    return [Finding("MB0100", "Cluster", f"{gap.what}: {gap.reason}; not checked: {gap.checks}") for gap in found.gaps]


def audit(found: Discovery) -> Audit:
    """Every rule over one discovery; findings ordered by severity, code and subject."""
    mesh = mesh_of(found)
    hooks = bank_vaults_webhooks(found)
    default_addr = hooks[0].env.get("VAULT_ADDR", DEFAULT_VAULT_ADDR) if hooks else DEFAULT_VAULT_ADDR
    container_findings, verdicts = _container_findings(found, mesh, default_addr)
    findings = [
        *_gap_findings(found),
        *_webhook_findings(found, mesh),
        *container_findings,
        *_address_findings(found),
        *_auth_delegator_findings(found),
        *_mesh_findings(found, mesh),
    ]
    order = list(Severity)
    findings.sort(key=lambda f: (order.index(f.severity), f.code, f.subject, f.message))
    return Audit(found.server, findings, verdicts)
