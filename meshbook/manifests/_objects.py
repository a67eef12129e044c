"""Building blocks shared by meshbook's manifest templates: object metadata and YAML output.

Templates are plain dicts (not text templating) so runbooks can apply them with the official client,
compare them with what a cluster holds, and print them for humans with `to_yaml`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml

Manifest = dict[str, Any]
"""One Kubernetes object as the API accepts it (JSON-compatible values only)."""

MANAGED_BY = {"app.kubernetes.io/managed-by": "meshbook"}
"""Label on every object meshbook renders, so a check or a clean-up can find them again."""

_TOP_LEVEL_ORDER = ("apiVersion", "kind", "metadata")
_METADATA_ORDER = ("name", "namespace", "labels", "annotations")


def metadata(name: str, namespace: str | None = None, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`metadata` with meshbook's label; `namespace` is omitted for cluster-scoped objects."""
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = {**(labels or {}), **MANAGED_BY}
    return meta


def obj(api_version: str, kind: str, meta: dict[str, Any], **fields: Any) -> Manifest:
    """An object with its keys in the order people expect to read them."""
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **fields}


def _ordered(mapping: Mapping[str, Any], first: Iterable[str]) -> dict[str, Any]:
    head = {key: mapping[key] for key in first if key in mapping}
    return {**head, **{k: v for k, v in mapping.items() if k not in head}}


class _Dumper(yaml.SafeDumper):
    """Block style, multi-line strings as `|` literals, and no anchors when a dict is shared."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def to_yaml(objects: Iterable[Mapping[str, Any]]) -> str:
    """Multi-document YAML (`---` between documents), keys in apiVersion, kind, metadata, spec order."""
    docs = []
    for item in objects:
        ordered = _ordered(item, _TOP_LEVEL_ORDER)
        if isinstance(ordered.get("metadata"), Mapping):
            ordered["metadata"] = _ordered(ordered["metadata"], _METADATA_ORDER)
        docs.append(yaml.dump(ordered, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120))
    return "---\n".join(docs)
