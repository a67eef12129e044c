"""The Bank-Vaults operator in the sandbox: a Vault custom resource becomes the objects the real
operator creates (FACTS 2, 3, 5).

It acts only while an operator Deployment (`app.kubernetes.io/name=vault-operator`) has a ready
replica, as the real one only acts while it runs. Per Vault CR: Secret `<name>-tls` with a real CA and
server certificate, its CA copied to `caNamespaces` on every reconcile, Secret `<name>-raw-config`
with `externalConfig`, the Service (API port name per `istioEnabled`), the StatefulSet (containers
vault, bank-vaults, prometheus-exporter; init container config-templating), the configurer
Deployment, the Ingress of `spec.ingress`, and the CR status; labels, annotations and env from the CR
as `vault_cr.VaultCR` places them. What of `spec.config` the sandbox's OpenBao cannot apply (its own
storage and listener) is a Warning Event `ConfigNotApplied` on the Vault CR, naming each field.

Every call is made as the operator pod's service account (`ActingCore`), so the chart's RBAC decides
what it may do: a refusal is logged by the operator's containers (controller-runtime's "Reconciler
error" line) and recorded as a Warning Event on the Vault CR, and retried when RBAC objects change.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import time
from collections.abc import Iterable

from meshbook.param_enums import SandboxSpeed
from meshbook.sandbox.addons import vault_objects
from meshbook.sandbox.addons.operator_log import OperatorLog
from meshbook.sandbox.addons.vault_cr import VaultCR
from meshbook.sandbox.apiserver import events
from meshbook.sandbox.apiserver.authorization.acting import ActingCore
from meshbook.sandbox.apiserver.authorization.rbac import RBAC_STORAGE_KEYS
from meshbook.sandbox.apiserver.authorization.user import UserInfo, service_account_user
from meshbook.sandbox.apiserver.verbs import ApiCore
from meshbook.sandbox.config import delays
from meshbook.sandbox.controllers.base import Controller, Key, owner_reference
from meshbook.sandbox.pki import issue_ca, issue_server_cert
from meshbook.sandbox.storage.resources import ResourceType
from meshbook.sandbox.storage.store import Object, StoreError, WatchEvent

GROUP, VERSION, PLURAL = "vault.banzaicloud.com", "v1alpha1", "vaults"
OPERATOR_LABEL = "vault-operator"


def _b64(data: bytes | str) -> str:
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


class VaultOperatorController(Controller):
    name = "vault-operator"

    def __init__(self, core: ApiCore, speed: SandboxSpeed) -> None:
        super().__init__(core, speed)
        # namespace uid -> when this operator first saw it (creationTimestamp has only whole seconds)
        self._first_seen: dict[str, float] = {}
        self.log = OperatorLog()  # what the operator's containers print
        # Vault CR uid -> the config fields last reported as not applied (one Event per change, not per loop)
        self._reported: dict[str, tuple[str, ...]] = {}

    def _rt(self, group: str, version: str, plural: str) -> ResourceType:
        rt = self.core.registry.lookup(group, version, plural)
        assert rt is not None, plural
        return rt

    def _vault_rt(self) -> ResourceType | None:
        return self.core.registry.lookup(GROUP, VERSION, PLURAL)

    def keys_for(self, event: WatchEvent) -> Iterable[Key]:
        obj = event.object
        if event.rt_key == f"{GROUP}/{PLURAL}" and event.type != "DELETED":
            yield (obj["metadata"]["namespace"], obj["metadata"]["name"])
        elif event.rt_key in ("apps/deployments", "/namespaces", "apps/statefulsets", "/secrets"):
            yield from self.initial_keys()  # operator readiness, new caNamespaces, lost objects
        elif event.rt_key in RBAC_STORAGE_KEYS:
            yield from self.initial_keys()  # a refused call may be allowed now

    def initial_keys(self) -> Iterable[Key]:
        rt = self._vault_rt()
        if rt is None:
            return
        for vault in self.core.store.list(rt):
            yield (vault["metadata"]["namespace"], vault["metadata"]["name"])

    def operator_identity(self) -> UserInfo | None:
        """The service account of a running operator Deployment's pods; None while no operator runs."""
        rt = self._rt("apps", "v1", "deployments")
        for deploy in self.core.store.list(rt):
            template = deploy.get("spec", {}).get("template", {})
            labels = template.get("metadata", {}).get("labels") or {}
            if labels.get("app.kubernetes.io/name") == OPERATOR_LABEL and deploy.get("status", {}).get("readyReplicas"):
                account = template.get("spec", {}).get("serviceAccountName") or "default"
                return service_account_user(deploy["metadata"]["namespace"], account)
        return None

    def operator_running(self) -> bool:
        return self.operator_identity() is not None

    async def reconcile(self, key: Key) -> None:
        rt = self._vault_rt()
        user = self.operator_identity() if rt is not None else None
        if rt is None or user is None:
            return
        vault = self.core.store.get(rt, *key)
        if vault is None or vault["metadata"].get("deletionTimestamp"):
            return
        try:
            await self._reconcile(ActingCore(self.core, user), rt, vault)
        except StoreError as exc:
            if exc.code != 403:
                raise
            # As controller-runtime reports it; retried when RBAC objects change (keys_for).
            self.log.error("Reconciler error", key, exc.message)
            events.record(self.core, vault, "Warning", "ReconcileError", exc.message, component="vault-operator")

    async def _reconcile(self, api: ActingCore, rt: ResourceType, vault: Object) -> None:
        ns, name = vault["metadata"]["namespace"], vault["metadata"]["name"]
        spec = vault.get("spec", {})
        cr = VaultCR.read(vault)
        self._report_config(cr, vault)
        tls = await self._ensure_tls(api, vault)
        await self._copy_ca(api, vault, tls)
        await self._ensure(
            api,
            self._rt("", "v1", "secrets"),
            ns,
            {
                "metadata": {"name": f"{name}-raw-config", "labels": vault_objects.labels(name, "vault")},
                "data": {"vault-config.yml": _b64(json.dumps(spec.get("externalConfig") or {}))},
            },
            vault,
            update=True,
        )
        await self._ensure(api, self._rt("", "v1", "services"), ns, vault_objects.service(vault), vault, update=True)
        await self._ensure(
            api, self._rt("apps", "v1", "statefulsets"), ns, vault_objects.statefulset(vault), vault, update=True
        )
        await self._ensure(
            api, self._rt("apps", "v1", "deployments"), ns, vault_objects.configurer(vault), vault, update=True
        )
        ingress = cr.ingress(vault_objects.labels(name, "vault"))
        if ingress is not None:
            await self._ensure(api, self._rt("networking.k8s.io", "v1", "ingresses"), ns, ingress, vault, update=True)
        self._write_status(api, rt, vault)

    def _report_config(self, cr: VaultCR, vault: Object) -> None:
        """A Warning Event naming the `spec.config` fields the sandbox's OpenBao runs without."""
        not_applied = tuple(cr.server.not_applied)
        uid = vault["metadata"].get("uid", "")
        if self._reported.get(uid) == not_applied:
            return
        self._reported[uid] = not_applied
        if not_applied:
            message = "spec.config fields the sandbox's OpenBao does not apply: " + "; ".join(not_applied)
            events.record(self.core, vault, "Warning", "ConfigNotApplied", message, component="vault-operator")

    async def _ensure(
        self, api: ActingCore, rt: ResourceType, namespace: str, body: Object, owner: Object, *, update: bool = False
    ) -> Object:
        body["metadata"]["ownerReferences"] = [owner_reference(owner)]
        live = api.get(rt, namespace, body["metadata"]["name"])
        if live is None:
            return await api.create(rt, namespace, body)
        if update:
            merged = copy.deepcopy(live)
            for part in ("spec", "data"):  # a Secret's data replaced, a spec merged into
                if part in body:
                    merged[part] = body[part] if part == "data" else {**live.get(part, {}), **body[part]}
            for field in ("labels", "annotations"):  # added to, as upstream keeps others' annotations
                wanted = body["metadata"].get(field) or {}
                if wanted:
                    merged["metadata"][field] = {**(live["metadata"].get(field) or {}), **wanted}
            if merged != live:
                return await api.update(rt, namespace, body["metadata"]["name"], merged)
        return live

    async def _ensure_tls(self, api: ActingCore, vault: Object) -> Object:
        ns, name = vault["metadata"]["namespace"], vault["metadata"]["name"]
        secrets = self._rt("", "v1", "secrets")
        live = api.get(secrets, ns, f"{name}-tls")
        if live is not None:
            return live
        ca_pem, ca_key = issue_ca(f"{name}-ca")
        hosts = [name, f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local", f"{name}-0"]
        cert, key = issue_server_cert(ca_pem, ca_key, name, hosts, ["127.0.0.1"])
        cr = VaultCR.read(vault)
        body = {
            "metadata": {
                "name": f"{name}-tls",
                "labels": cr.vault_labels(vault_objects.labels(name, "vault")),
                "annotations": cr.vault_annotations(),
            },
            "type": "Opaque",
            "data": {"ca.crt": _b64(ca_pem), "ca.key": _b64(ca_key), "server.crt": _b64(cert), "server.key": _b64(key)},
        }
        return await self._ensure(api, secrets, ns, body, vault)

    async def _copy_ca(self, api: ActingCore, vault: Object, tls: Object) -> None:
        """The CA goes to every listed namespace that exists now (later ones: on a later reconcile)."""
        secrets = self._rt("", "v1", "secrets")
        namespaces = self._rt("", "v1", "namespaces")
        name = vault["metadata"]["name"]
        for target in vault.get("spec", {}).get("caNamespaces") or []:
            targets = [n["metadata"]["name"] for n in api.list(namespaces)] if target == "*" else [target]
            for ns in targets:
                namespace = api.get(namespaces, "", ns)
                if namespace is None or namespace["metadata"].get("deletionTimestamp"):
                    continue
                if ns == vault["metadata"]["namespace"] or api.get(secrets, ns, f"{name}-tls") is not None:
                    continue
                first_seen = self._first_seen.setdefault(namespace["metadata"]["uid"], time.monotonic())
                due_in = delays(self.speed).ca_copy - (time.monotonic() - first_seen)
                if due_in > 0:  # the real operator copies on its next periodic reconcile
                    asyncio.get_running_loop().call_later(due_in, self.enqueue, (vault["metadata"]["namespace"], name))
                    continue
                await api.create(
                    secrets,
                    ns,
                    {
                        "metadata": {"name": f"{name}-tls", "labels": vault_objects.labels(name, "vault")},
                        "data": {"ca.crt": tls["data"]["ca.crt"]},
                    },
                )

    def _write_status(self, api: ActingCore, rt: ResourceType, vault: Object) -> None:
        pods_rt = self._rt("", "v1", "pods")
        name, ns = vault["metadata"]["name"], vault["metadata"]["namespace"]
        pods = [
            p
            for p in api.list(pods_rt, ns)
            if (p["metadata"].get("labels") or {}).get("vault_cr") == name
            and (p["metadata"].get("labels") or {}).get("app.kubernetes.io/name") == "vault"
        ]
        ready = [
            p
            for p in pods
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in p.get("status", {}).get("conditions", [])
            )
        ]
        status = {
            "nodes": sorted(p["metadata"]["name"] for p in pods),
            "leader": ready[0]["metadata"]["name"] if ready else "",
            "conditions": [
                {
                    "type": "Healthy",
                    "status": "True" if ready else "False",
                    "reason": "ReadyReplicas" if ready else "NotReady",
                }
            ],
        }
        live = self.core.store.get(rt, ns, name)
        if live is not None and live.get("status") != status:
            api.check("update", rt, ns, name, "status")
            updated = copy.copy(live)
            updated["metadata"] = copy.deepcopy(live["metadata"])
            updated["status"] = status
            self.core.store.update(rt, updated)
