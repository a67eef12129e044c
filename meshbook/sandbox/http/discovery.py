"""JSON bodies of the discovery endpoints (`/version`, `/api`, `/apis`, `/api/v1`, `/apis/G/V`).

kubectl and client-go build their REST mapping from these answers, so every field they read (kind,
namespaced, verbs, shortNames, categories, subresource kinds) is served the way a real API server
serves it; the bodies are computed from the `ResourceRegistry`, so CRDs appear as soon as they are
registered. The subresource table below is shared with the OpenAPI builder.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from meshbook.sandbox.storage.resources import ResourceRegistry, ResourceType

DiscoveryFormat = Literal["aggregated-v2", "aggregated-v2beta1", "legacy"]

_AGGREGATED = "application/json;g=apidiscovery.k8s.io;v={};as=APIGroupDiscoveryList"

#: The exact response Content-Type for each format: client-go parses it to decide how to decode.
DISCOVERY_CONTENT_TYPES: dict[DiscoveryFormat, str] = {
    "aggregated-v2": _AGGREGATED.format("v2"),
    "aggregated-v2beta1": _AGGREGATED.format("v2beta1"),
    "legacy": "application/json",
}

GET_PATCH_UPDATE: tuple[str, ...] = ("get", "patch", "update")


@dataclass(frozen=True)
class Subresource:
    """How a subresource is listed: its own kind (None = the parent's), group/version, verbs."""

    verbs: tuple[str, ...]
    kind: str | None = None
    group: str | None = None
    version: str | None = None


#: Subresources as the real API lists them; a "{}" in a kind is replaced by the parent's kind.
SUBRESOURCES: dict[str, Subresource] = {
    "status": Subresource(GET_PATCH_UPDATE),
    "scale": Subresource(GET_PATCH_UPDATE, "Scale", "autoscaling", "v1"),
    "log": Subresource(("get",)),
    "portforward": Subresource(("create", "get"), "{}PortForwardOptions"),
    "exec": Subresource(("create", "get"), "{}ExecOptions"),
    "attach": Subresource(("create", "get"), "{}AttachOptions"),
    "proxy": Subresource(("create", "delete", "get", "patch", "update"), "{}ProxyOptions"),
    "binding": Subresource(("create",), "Binding"),
    "eviction": Subresource(("create",), "Eviction", "policy", "v1"),
    "ephemeralcontainers": Subresource(GET_PATCH_UPDATE),
    "resize": Subresource(GET_PATCH_UPDATE),
    "token": Subresource(("create",), "TokenRequest", "authentication.k8s.io", "v1"),
    "finalize": Subresource(("update",)),
}


def subresource_of(name: str) -> Subresource:
    """The listing of a subresource; unknown ones are served like `status`."""
    return SUBRESOURCES.get(name, Subresource(GET_PATCH_UPDATE))


def subresource_gvk(parent: ResourceType, name: str) -> tuple[str, str, str]:
    """(group, version, kind) a subresource answers with, e.g. deployments/scale -> autoscaling/v1 Scale."""
    sub = subresource_of(name)
    kind = sub.kind.replace("{}", parent.kind) if sub.kind else parent.kind
    return (
        parent.group if sub.group is None else sub.group,
        parent.version if sub.version is None else sub.version,
        kind,
    )


def storage_version_hash(t: ResourceType) -> str:
    """The opaque hash the real server derives from the storage group/version/kind."""
    digest = hashlib.sha256(f"{t.group}/{t.version}/{t.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def version_info(kubernetes_version: str = "1.33") -> dict[str, Any]:
    """`/version`: kubectl's dispatcher picks the kubectl minor matching `minor` from this."""
    major, minor = kubernetes_version.split(".")[:2]
    info: dict[str, Any] = {"major": major, "minor": minor}
    if int(minor) >= 33:  # the emulation fields exist from 1.33 on
        info |= {
            "emulationMajor": major,
            "emulationMinor": minor,
            "minCompatibilityMajor": major,
            "minCompatibilityMinor": str(int(minor) - 1),
        }
    return info | {
        "gitVersion": f"v{major}.{minor}.0",
        "gitCommit": hashlib.sha1(f"meshbook-sandbox-{major}.{minor}".encode()).hexdigest(),
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str = "127.0.0.1:6443") -> dict[str, Any]:
    """`/api`: the legacy core group only has v1 (real server: no apiVersion key here)."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group_version(group: str, version: str) -> dict[str, str]:
    return {"groupVersion": f"{group}/{version}", "version": version}


def api_group_list(registry: ResourceRegistry) -> dict[str, Any]:
    """`/apis`: every named group with its versions, the first registered one preferred."""
    groups = []
    for group, versions in registry.group_versions().items():
        if not group:
            continue
        groups.append(
            {
                "name": group,
                "versions": [_group_version(group, v) for v in versions],
                "preferredVersion": _group_version(group, versions[0]),
            }
        )
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def _resource_entry(t: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": t.plural,
        "singularName": t.singular,
        "namespaced": t.namespaced,
        "kind": t.kind,
        "verbs": list(t.verbs),
    }
    if t.short_names:
        entry["shortNames"] = list(t.short_names)
    if t.categories:
        entry["categories"] = list(t.categories)
    if t.stored:
        entry["storageVersionHash"] = storage_version_hash(t)
    return entry


def _subresource_entry(t: ResourceType, name: str) -> dict[str, Any]:
    group, version, kind = subresource_gvk(t, name)
    entry: dict[str, Any] = {"name": f"{t.plural}/{name}", "singularName": "", "namespaced": t.namespaced}
    if (group, version) != (t.group, t.version):
        entry |= {"group": group, "version": version}
    return entry | {"kind": kind, "verbs": list(subresource_of(name).verbs)}


def api_resource_list(registry: ResourceRegistry, group: str, version: str) -> dict[str, Any] | None:
    """`/api/v1` or `/apis/G/V`; None when the group-version is not served (answer 404)."""
    types = registry.in_group_version(group, version)
    if not types:
        return None
    resources: list[dict[str, Any]] = []
    for t in types:
        resources.append(_resource_entry(t))
        resources.extend(_subresource_entry(t, s) for s in t.subresources)
    body: dict[str, Any] = {"kind": "APIResourceList"}
    if group:  # the real /api/v1 answer carries no apiVersion
        body["apiVersion"] = "v1"
    return body | {"groupVersion": f"{group}/{version}" if group else version, "resources": resources}


def _gvk(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "version": version, "kind": kind}


def _aggregated_resource(t: ResourceType) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": t.plural,
        "responseKind": _gvk("", "", t.kind),
        "scope": "Namespaced" if t.namespaced else "Cluster",
        "singularResource": t.singular,
        "verbs": list(t.verbs),
    }
    if t.short_names:
        entry["shortNames"] = list(t.short_names)
    if t.categories:
        entry["categories"] = list(t.categories)
    subs = []
    for name in t.subresources:
        group, version, kind = subresource_gvk(t, name)
        same = (group, version) == (t.group, t.version)
        subs.append(
            {
                "subresource": name,
                "responseKind": _gvk("" if same else group, "" if same else version, kind),
                "verbs": list(subresource_of(name).verbs),
            }
        )
    if subs:
        entry["subresources"] = subs
    return entry


def aggregated_discovery(
    registry: ResourceRegistry, core: bool, mode: DiscoveryFormat = "aggregated-v2"
) -> tuple[dict[str, Any], str]:
    """APIGroupDiscoveryList for `/api` (core=True) or `/apis` -> (body, exact Content-Type to send).

    All of discovery in one request; v2 and v2beta1 have the same shape. client-go decodes the body
    by the response Content-Type, so it must be sent as returned.
    """
    items = []
    for group, versions in registry.group_versions().items():
        if bool(group) == core:
            continue
        items.append(
            {
                "metadata": {"name": group} if group else {},
                "versions": [
                    {
                        "version": v,
                        "resources": [_aggregated_resource(t) for t in registry.in_group_version(group, v)],
                        "freshness": "Current",
                    }
                    for v in versions
                ],
            }
        )
    if mode == "legacy":
        raise ValueError("aggregated_discovery: mode must be aggregated-v2 or aggregated-v2beta1")
    api_version = "apidiscovery.k8s.io/" + mode.removeprefix("aggregated-")
    body = {"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items}
    return body, DISCOVERY_CONTENT_TYPES[mode]


def _media_ranges(accept: str) -> list[tuple[str, dict[str, str]]]:
    """Accept header -> [(type/subtype, params)], best quality first, q=0 dropped."""
    ranges: list[tuple[float, int, str, dict[str, str]]] = []
    for index, part in enumerate(accept.split(",")):
        pieces = [p.strip() for p in part.split(";")]
        if not pieces[0]:
            continue
        params: dict[str, str] = {}
        for piece in pieces[1:]:
            key, _, value = piece.partition("=")
            params[key.strip().lower()] = value.strip().strip('"')
        try:
            quality = float(params.pop("q", "1"))
        except ValueError:
            quality = 1.0
        if quality > 0:
            ranges.append((-quality, index, pieces[0].lower(), params))
    return [(media, params) for _, _, media, params in sorted(ranges)]


def negotiate_discovery(accept_header: str | None) -> DiscoveryFormat:
    """Which discovery form to answer `/api` and `/apis` with, from the request's Accept header.

    Aggregated forms only when explicitly asked for (g/v/as parameters); anything else, including
    protobuf (not served here) and a missing header, gets the legacy JSON lists.
    """
    for media, params in _media_ranges(accept_header or ""):
        if media not in ("application/json", "application/*", "*/*"):
            continue
        if params.get("g") == "apidiscovery.k8s.io" and params.get("as") == "APIGroupDiscoveryList":
            if params.get("v") == "v2":
                return "aggregated-v2"
            if params.get("v") == "v2beta1":
                return "aggregated-v2beta1"
            continue
        if not params.get("as"):
            return "legacy"
    return "legacy"
