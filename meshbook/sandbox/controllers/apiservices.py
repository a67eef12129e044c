"""APIServices: one `apiregistration.k8s.io/v1` object per served group-version, as the aggregator's
autoregistration keeps them (`kubectl get apiservices` lists `v1.apps   Local   True`).

Every group the sandbox serves is local (no aggregated API server), so each APIService has no
`service` and is Available with reason Local. Built-in group-versions are labelled `onstart`, those
of CRDs `true`, and the priorities are kube-apiserver's table (CRD groups get 1000 and 100).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from meshbook.sandbox.controllers.base import Controller, Key
from meshbook.sandbox.storage.resources import ResourceType
from meshbook.sandbox.storage.store import Object, WatchEvent, now_rfc3339

AUTOMANAGED = "kube-aggregator.kubernetes.io/automanaged"
#: (group, version) -> (groupPriorityMinimum, versionPriority) of the built-in group-versions.
PRIORITIES: dict[tuple[str, str], tuple[int, int]] = {
    ("", "v1"): (18000, 1),
    ("apps", "v1"): (17800, 15),
    ("authentication.k8s.io", "v1"): (17700, 15),
    ("authorization.k8s.io", "v1"): (17600, 15),
    ("batch", "v1"): (17400, 15),
    ("networking.k8s.io", "v1"): (17200, 15),
    ("rbac.authorization.k8s.io", "v1"): (17000, 15),
    ("apiextensions.k8s.io", "v1"): (16700, 15),
    ("admissionregistration.k8s.io", "v1"): (16700, 15),
    ("coordination.k8s.io", "v1"): (16500, 15),
    ("apiregistration.k8s.io", "v1"): (18000, 15),
}
CUSTOM_PRIORITY = (1000, 100)
_KEY: Key = ("", "apiservices")


def apiservice_name(group: str, version: str) -> str:
    """`v1.apps`; the core group's is `v1.`."""
    return f"{version}.{group}"


class APIServiceController(Controller):
    """Keeps one APIService per served group-version: added with CRDs, removed when they go."""

    name = "apiservice"

    def keys_for(self, event: WatchEvent) -> Iterable[Key]:
        if event.rt_key in ("apiextensions.k8s.io/customresourcedefinitions", "apiregistration.k8s.io/apiservices"):
            yield _KEY

    def initial_keys(self) -> Iterable[Key]:
        yield _KEY

    @property
    def rt(self) -> ResourceType:
        rt = self.core.registry.lookup("apiregistration.k8s.io", "v1", "apiservices")
        assert rt is not None
        return rt

    async def reconcile(self, key: Key) -> None:
        crd_rt = self.core.registry.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert crd_rt is not None
        self.core.registry.sync_crds(self.core.store.list(crd_rt))  # whichever controller runs first
        wanted: dict[str, Object] = {}
        custom = {(t.group, t.version) for t in self.core.registry.types() if t.custom}
        for group, versions in self.core.registry.group_versions().items():
            for version in versions:
                body = _apiservice(group, version, (group, version) in custom)
                wanted[body["metadata"]["name"]] = body
        live = {o["metadata"]["name"]: o for o in self.core.store.list(self.rt)}
        for name, body in wanted.items():
            current = live.get(name)
            if current is None:
                body["status"] = _available(now_rfc3339())
                self.core.store.create(self.rt, body)
            elif current.get("spec") != body["spec"]:
                updated = copy.deepcopy(current)
                updated["spec"] = body["spec"]
                self.core.store.update(self.rt, updated)
        for name, current in live.items():
            if name not in wanted and (current["metadata"].get("labels") or {}).get(AUTOMANAGED):
                self.core.store.delete(self.rt, "", name)


def _apiservice(group: str, version: str, custom: bool) -> dict[str, Any]:
    group_priority, version_priority = CUSTOM_PRIORITY if custom else PRIORITIES.get((group, version), (1000, 15))
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {
            "name": apiservice_name(group, version),
            "labels": {AUTOMANAGED: "true" if custom else "onstart"},
        },
        "spec": {"group": group, "version": version, "groupPriorityMinimum": group_priority,
                 "versionPriority": version_priority} if group else
                {"version": version, "groupPriorityMinimum": group_priority, "versionPriority": version_priority},
    }  # fmt: skip


def _available(now: str) -> dict[str, Any]:
    return {
        "conditions": [
            {"type": "Available", "status": "True", "lastTransitionTime": now, "reason": "Local",
             "message": "Local APIServices are always available"}
        ]
    }  # fmt: skip
