"""`metadata.managedFields`: which manager owns which fields, in the FieldsV1 form the API serves.

A field path is a tuple of FieldsV1 elements (`"f:spec"`, `'k:{"name":"app"}'`, `'v:"x"'`), a field set
is a set of paths and an entry is one manager's set. Server-side apply and ordinary writes (create,
update, non-apply patches, via `record_update`) both keep ownership here, so an apply can report
conflicts with `kubectl-client-side-apply`, `kubectl edit` and controllers the way a real cluster does.
"""

from __future__ import annotations

import copy
import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from meshbook.sandbox.apiserver.patch.schema import DEFAULT, FieldPath, FieldStrategy, PatchError, schema_for
from meshbook.sandbox.apiserver.patch.strategic_merge import json_equal
from meshbook.sandbox.clock import current as current_clock

Path = tuple[str, ...]

# Fields nobody owns (apimachinery's stripMetaManager list), besides `metadata` itself.
_UNOWNED_METADATA = frozenset(
    {"name", "namespace", "creationTimestamp", "selfLink", "uid", "clusterName", "generation"}
    | {"managedFields", "resourceVersion"}
)
# Fields typed map[string]string (or similar) in the API: their own node is owned, as FieldsV1 shows
# with `".": {}`, when an update creates them; struct-typed objects are never owned themselves.
_MAP_FIELDS = frozenset(
    {
        "labels",
        "annotations",
        "data",
        "binaryData",
        "stringData",
        "nodeSelector",
        "matchLabels",
        "limits",
        "requests",
    }
)


class _Missing(enum.Enum):
    MISSING = enum.auto()


MISSING = _Missing.MISSING


@dataclass
class Entry:
    """One managedFields entry; `fields` is mutable so apply and update can move ownership."""

    manager: str
    operation: str
    api_version: str
    time: str | None
    fields: set[Path] = field(default_factory=set)
    subresource: str | None = None

    def same_manager(self, other: Entry) -> bool:
        """Apply entries are one per manager; update entries one per manager and apiVersion."""
        return (self.manager, self.operation, self.subresource) == (
            other.manager,
            other.operation,
            other.subresource,
        ) and (self.operation == "Apply" or self.api_version == other.api_version)

    def describe(self) -> str:
        """The manager as the API server prints it in conflict messages."""
        text = json.dumps(self.manager)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource)}"
        return f"{text} using {self.api_version}" if self.operation == "Update" else text


def now_text(now: datetime | None) -> str:
    """RFC 3339 in UTC with second precision, as metav1.Time serializes."""
    return (now or current_clock().now()).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def key_element(key: str, value: Any) -> str:
    return "k:" + json.dumps({key: value}, separators=(",", ":"), sort_keys=True)


def value_element(value: Any) -> str:
    return "v:" + json.dumps(value, separators=(",", ":"), sort_keys=True)


def show_path(path: Path) -> str:
    """A path as conflict messages print it, e.g. `.spec.containers[name="app"].image`."""
    parts: list[str] = []
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f":
            parts.append("." + rest)
        elif kind == "k":
            keys = json.loads(rest)
            parts.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(keys.items())) + "]")
        else:
            parts.append(f"[={rest}]" if kind == "v" else f"[{rest}]")
    return "".join(parts) or "."


def field_set(obj: Mapping[str, Any], kind: str, *, applied: bool) -> set[Path]:
    """The fields `obj` sets: for an apply configuration (`applied`) or as an update records them.

    Apply owns leaves and list items only; an update also owns map-typed fields themselves. Lists are
    walked by the merge keys of `kind` (items as `k:`, set members as `v:`), other lists are atomic.
    """
    out: set[Path] = set()
    _walk_map(obj, (), (), schema_for(kind), out, applied)
    out.discard(("f:metadata",))
    return out


def _walk_map(
    obj: Mapping[str, Any],
    path: Path,
    spath: FieldPath,
    schema: Mapping[FieldPath, FieldStrategy],
    out: set[Path],
    applied: bool,
) -> None:
    for key, value in obj.items():
        if value is None or (not path and key in ("apiVersion", "kind")):
            continue
        if path == ("f:metadata",) and key in _UNOWNED_METADATA:
            continue
        here, shere = (*path, f"f:{key}"), (*spath, key)
        if isinstance(value, dict):
            if not value:
                out.add(here)
                continue
            if not applied and key in _MAP_FIELDS:
                out.add(here)
            _walk_map(value, here, shere, schema, out, applied)
        elif isinstance(value, list):
            _walk_list(value, here, shere, schema, out, applied)
        else:
            out.add(here)


def _walk_list(
    items: list[Any],
    path: Path,
    spath: FieldPath,
    schema: Mapping[FieldPath, FieldStrategy],
    out: set[Path],
    applied: bool,
) -> None:
    strategy = schema.get(spath, DEFAULT)
    if not items or not strategy.merge:
        out.add(path)
        return
    key = strategy.merge_key
    if key is None:
        if any(isinstance(item, dict | list) for item in items):
            out.add(path)
        else:
            out.update((*path, value_element(item)) for item in items)
        return
    for number, item in enumerate(items):
        if not isinstance(item, dict) or item.get(key) is None:
            if applied:
                raise PatchError(
                    f"{show_path(path)}: element {number}: associative list with keys has an element "
                    f'that omits key field "{key}"'
                )
            out.add(path)  # a live list we cannot key: own it whole
            return
    for item in items:
        item_path = (*path, key_element(key, item[key]))
        out.add(item_path)
        _walk_map(item, item_path, spath, schema, out, applied)


def resolve(obj: Any, path: Path) -> Any:
    """The value at `path`, or MISSING."""
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f" and isinstance(obj, dict):
            obj = obj.get(rest, MISSING)
        elif kind == "k" and isinstance(obj, list):
            keys = json.loads(rest)
            obj = next((i for i in obj if isinstance(i, dict) and _has_keys(i, keys)), MISSING)
        elif kind == "v" and isinstance(obj, list):
            value = json.loads(rest)
            obj = value if any(json_equal(value, i) for i in obj) else MISSING
        else:
            return MISSING
        if obj is MISSING or obj is None:
            return MISSING
    return obj


def remove(obj: dict[str, Any], path: Path) -> None:
    """Remove the field or list item at `path` if it is there."""
    parent = resolve(obj, path[:-1])
    kind, _, rest = path[-1].partition(":")
    if kind == "f" and isinstance(parent, dict):
        parent.pop(rest, None)
    elif kind in ("k", "v") and isinstance(parent, list):
        wanted = json.loads(rest)
        keep = [i for i in parent if not (_has_keys(i, wanted) if kind == "k" else json_equal(i, wanted))]
        parent[:] = keep


def _has_keys(item: Any, keys: Mapping[str, Any]) -> bool:
    return isinstance(item, dict) and all(json_equal(item.get(k), v) for k, v in keys.items())


def encode(fields: Iterable[Path]) -> dict[str, Any]:
    """A field set as a FieldsV1 trie: `{}` marks a member leaf, `".": {}` a member with children."""
    tree: dict[str, Any] = {}
    members: set[Path] = set(fields)
    for path in members:
        node = tree
        for element in path:
            node = node.setdefault(element, {})
    return _finish(tree, (), members)


def _finish(node: dict[str, Any], path: Path, members: set[Path]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if path in members and node:
        result["."] = {}
    for element in sorted(node):
        result[element] = _finish(node[element], (*path, element), members)
    return result


def decode(tree: Any, path: Path = ()) -> set[Path]:
    """The field set a FieldsV1 trie describes."""
    out: set[Path] = set()
    if not isinstance(tree, dict):
        return out
    for element, child in tree.items():
        if element == ".":
            out.add(path)
        elif isinstance(child, dict) and not child:
            out.add((*path, element))
        else:
            out |= decode(child, (*path, element))
    return out


def read_entries(obj: Mapping[str, Any] | None) -> list[Entry]:
    """The managedFields entries of `obj` (malformed ones are skipped, as the API server resets them)."""
    raw = ((obj or {}).get("metadata") or {}).get("managedFields") or []
    entries: list[Entry] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        entries.append(
            Entry(
                manager=str(item.get("manager", "")),
                operation=str(item.get("operation", "")),
                api_version=str(item.get("apiVersion", "")),
                time=item.get("time"),
                fields=decode(item.get("fieldsV1")),
                subresource=item.get("subresource"),
            )
        )
    return entries


def write_entries(obj: dict[str, Any], entries: list[Entry]) -> None:
    """Store non-empty entries in the API server's order (operation, time, manager, apiVersion)."""
    kept = sorted(
        (e for e in entries if e.fields),
        key=lambda e: (e.operation, e.time or "", e.manager, e.api_version),
    )
    metadata = obj.setdefault("metadata", {})
    if not kept:
        metadata.pop("managedFields", None)
        return
    metadata["managedFields"] = [_entry_json(e) for e in kept]


def _entry_json(entry: Entry) -> dict[str, Any]:
    body: dict[str, Any] = {
        "manager": entry.manager,
        "operation": entry.operation,
        "apiVersion": entry.api_version,
    }
    if entry.time:
        body["time"] = entry.time
    body["fieldsType"] = "FieldsV1"
    body["fieldsV1"] = encode(entry.fields)
    if entry.subresource:
        body["subresource"] = entry.subresource
    return body


def fields_v1_of(obj: Mapping[str, Any], kind: str = "") -> dict[str, Any]:
    """The FieldsV1 trie of every field `obj` sets, as an update by its sole writer would record it."""
    return encode(field_set(obj, kind or str(obj.get("kind", "")), applied=False))


def record_update(
    previous: Mapping[str, Any] | None,
    updated: Mapping[str, Any],
    field_manager: str,
    kind: str,
    *,
    subresource: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """`updated` with managedFields after a create/update/non-apply patch by `field_manager`.

    The manager takes ownership of every field it added or changed (taking it from other managers);
    fields that disappeared lose their owners. As in the API server, managedFields sent in `updated`
    replace the live ones when non-empty, which is how clients (kubectl's apply migration) rewrite them.
    """
    result = copy.deepcopy(dict(updated))
    entries = read_entries(updated) or read_entries(previous)
    old = field_set(previous, kind, applied=False) if previous is not None else set()
    new = field_set(updated, kind, applied=False)
    parents = {path[:depth] for path in new for depth in range(1, len(path))}
    changed = {
        path
        for path in new
        if path not in old or (path not in parents and not json_equal(resolve(previous, path), resolve(updated, path)))
    }
    me = Entry(field_manager, "Update", str(updated.get("apiVersion", "")), now_text(now), set(), subresource)
    mine = next((e for e in entries if e.same_manager(me)), None)
    for entry in entries:
        entry.fields -= old - new
        if entry is not mine:
            entry.fields -= changed
    if changed:
        if mine is None:
            entries.append(me)
            mine = me
        mine.fields |= changed
        mine.time = me.time
    write_entries(result, entries)
    return result
