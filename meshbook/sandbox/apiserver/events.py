"""core/v1 Events about objects, as the kubelet and controllers emit them (`kubectl get events`)."""

from __future__ import annotations

from typing import Any

from meshbook.sandbox.apiserver.admission import generate_suffix
from meshbook.sandbox.apiserver.verbs import ApiCore
from meshbook.sandbox.storage.store import Object, now_rfc3339


def record(core: ApiCore, about: Object, type_: str, reason: str, message: str, component: str = "kubelet") -> None:
    """Store an Event about `about`; identical consecutive events bump `count` instead of piling up."""
    rt = core.registry.lookup("", "v1", "events")
    assert rt is not None
    meta = about["metadata"]
    namespace = meta.get("namespace") or "default"
    now = now_rfc3339()
    index_key = (meta.get("uid", ""), reason, message)
    existing_name = core.event_index.get(index_key)
    existing = core.store.get(rt, namespace, existing_name) if existing_name else None
    if existing is not None:
        updated: dict[str, Any] = {**existing, "count": existing.get("count", 1) + 1, "lastTimestamp": now}
        updated["metadata"] = dict(existing["metadata"])
        core.store.update(rt, updated)
        return
    event: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name']}.{generate_suffix(10)}", "namespace": namespace},
        "involvedObject": {
            "kind": about.get("kind"),
            "namespace": meta.get("namespace"),
            "name": meta["name"],
            "uid": meta.get("uid"),
            "apiVersion": about.get("apiVersion"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "reason": reason,
        "message": message,
        "source": {"component": component, "host": "sandbox"} if component == "kubelet" else {"component": component},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": type_,
        "eventTime": None,
        "reportingComponent": component,
        "reportingInstance": "sandbox" if component == "kubelet" else "",
    }
    if core.store.get(rt, namespace, event["metadata"]["name"]) is None:
        core.store.create(rt, event)
        core.event_index[index_key] = event["metadata"]["name"]
