"""Server-side apply on plain JSON dicts: merge by the kind's list keys, own fields, report conflicts.

Faithful where clients notice: the apply configuration is merged into the live object (maps merge,
lists with a merge key merge item by item, lists of scalars with the merge strategy are sets, other
lists are replaced); the applier's `managedFields` entry (operation "Apply", FieldsV1) lists exactly
the fields it applied; a field another manager owns (by Apply or Update, e.g.
"kubectl-client-side-apply") conflicts when the applied value differs, with the API server's message,
unless `force` moves ownership; fields an applier stops applying are removed when nobody else owns
them; an object without managedFields is owned by "before-first-apply", as upstream.

Simplified: the list keys are the strategic-merge keys of `patch_schema` (upstream also keys
container and Service ports by protocol); unknown kinds treat every list as atomic (no CRD schemas);
struct-typed atomic maps such as label selectors are tracked field by field; `null` in the
configuration means "not applied" rather than an explicit null; new list items are appended after
live ones instead of following the configuration's order; no defaulting or validation happens here.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from meshbook.sandbox.apiserver.patch.managed_fields import (
    Entry,
    Path,
    field_set,
    now_text,
    read_entries,
    remove,
    resolve,
    show_path,
    write_entries,
)
from meshbook.sandbox.apiserver.patch.schema import DEFAULT, FieldPath, FieldStrategy, PatchError, schema_for
from meshbook.sandbox.apiserver.patch.strategic_merge import json_equal


@dataclass(frozen=True)
class FieldConflict:
    """One conflicting field and its owner, as a Status cause of type FieldManagerConflict names them."""

    manager: str  # as printed by the API server, e.g. '"kubectl-client-side-apply" using apps/v1'
    field: str  # e.g. '.spec.template.spec.containers[name="app"].image'

    @property
    def message(self) -> str:
        return f"conflict with {self.manager}"


class ConflictError(PatchError):
    """The apply would change fields other managers own; the API server answers 409 Conflict."""

    def __init__(self, conflicts: tuple[FieldConflict, ...]) -> None:
        super().__init__(_conflict_message(conflicts), code=409)
        self.conflicts = conflicts

    def causes(self) -> list[dict[str, str]]:
        """The `details.causes` of the Status the API server sends."""
        return [{"type": "FieldManagerConflict", "message": c.message, "field": c.field} for c in self.conflicts]


def _conflict_message(conflicts: tuple[FieldConflict, ...]) -> str:
    if len(conflicts) == 1:
        only = conflicts[0]
        return f"Apply failed with 1 conflict: conflict with {only.manager}: {only.field}"
    by_manager: dict[str, list[str]] = {}
    for conflict in conflicts:
        by_manager.setdefault(conflict.manager, []).append(conflict.field)
    lines: list[str] = []
    for manager in sorted(by_manager):
        lines.append(f"conflicts with {manager}:")
        lines.extend(f"- {f}" for f in by_manager[manager])
    return f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)


def apply_server_side(
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    field_manager: str,
    force: bool,
    kind: str,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The object after `field_manager` applies `applied` to `live` (None: create); inputs are unchanged."""
    if not isinstance(applied, dict):
        raise PatchError("an apply configuration must be a JSON object", code=400)
    if not field_manager:
        raise PatchError("fieldManager: Required value: is required for apply patch")
    metadata = applied.get("metadata")
    if isinstance(metadata, dict) and metadata.get("managedFields") is not None:
        raise PatchError("metadata.managedFields must be nil", code=400)
    config: dict[str, Any] = _without_nulls(applied)
    applied_set = field_set(config, kind, applied=True)
    me = Entry(field_manager, "Apply", str(config.get("apiVersion", "")), now_text(now), applied_set)
    if live is None:
        created = copy.deepcopy(config)
        write_entries(created, [me])
        return created
    entries = read_entries(live) or [
        Entry(
            "before-first-apply",
            "Update",
            str(live.get("apiVersion", "")),
            me.time,
            field_set(live, kind, applied=False),
        )
    ]
    mine = next((e for e in entries if e.same_manager(me)), None)
    others = [e for e in entries if e is not mine]
    conflicts = _conflicts(live, config, applied_set, others)
    if conflicts and not force:
        raise ConflictError(tuple(FieldConflict(e.describe(), show_path(p)) for e, p in conflicts))
    for entry, path in conflicts:
        entry.fields.discard(path)
    result: dict[str, Any] = _merge(copy.deepcopy(live), config, (), schema_for(kind))
    _remove_unapplied(result, (mine.fields if mine else set()) - applied_set, applied_set, others)
    if mine is not None and mine.fields == applied_set and _same_object(result, live):
        me.time = mine.time  # a no-op apply leaves the object, timestamps included, as it was
    write_entries(result, [*others, me])
    return result


def _conflicts(
    live: Mapping[str, Any], config: Mapping[str, Any], applied_set: set[Path], others: list[Entry]
) -> list[tuple[Entry, Path]]:
    """Applied leaf fields owned by another manager whose live value differs from the applied one."""
    parents = {path[:depth] for path in applied_set for depth in range(1, len(path))}
    leaves = sorted(path for path in applied_set if path not in parents)
    found: list[tuple[Entry, Path]] = []
    for entry in others:
        for path in leaves:
            if path in entry.fields and not json_equal(resolve(live, path), resolve(config, path)):
                found.append((entry, path))
    return found


def _merge(live: Any, applied: Any, spath: FieldPath, schema: Mapping[FieldPath, FieldStrategy]) -> Any:
    """Merge the configuration into the live value (which is a private copy, changed in place)."""
    if isinstance(live, dict) and isinstance(applied, dict):
        for key, value in applied.items():
            if live.get(key) is None:
                live[key] = copy.deepcopy(value)
            else:
                live[key] = _merge(live[key], value, (*spath, key), schema)
        return live
    strategy = schema.get(spath, DEFAULT)
    if isinstance(live, list) and isinstance(applied, list) and strategy.merge:
        key = strategy.merge_key
        for item in applied:
            if key is None:
                if not any(json_equal(item, existing) for existing in live):
                    live.append(copy.deepcopy(item))
                continue
            position = next(
                (i for i, o in enumerate(live) if isinstance(o, dict) and json_equal(o.get(key), item[key])),
                -1,
            )
            if position >= 0:
                live[position] = _merge(live[position], item, spath, schema)
            else:
                live.append(copy.deepcopy(item))
        return live
    return copy.deepcopy(applied)


def _remove_unapplied(result: dict[str, Any], dropped: set[Path], applied_set: set[Path], others: list[Entry]) -> None:
    """Delete fields the applier no longer applies, unless someone still owns them or something below."""
    owned = set(applied_set).union(*(e.fields for e in others))
    kept = {path[:depth] for path in owned for depth in range(1, len(path) + 1)}
    gone = dropped - kept
    for path in sorted(dropped, key=len, reverse=True):
        # A field under a dropped list item goes with the item: removed alone first, its key field
        # would leave the item unfindable and the rest of it behind.
        if path in kept or any(path[:depth] in gone for depth in range(1, len(path))):
            continue
        remove(result, path)
        parent = path[:-1]
        while parent and parent not in kept:
            value = resolve(result, parent)
            if not isinstance(value, dict | list) or value:
                break
            remove(result, parent)
            parent = parent[:-1]


def _same_object(left: Mapping[str, Any], right: Mapping[str, Any]) -> bool:
    def bare(obj: Mapping[str, Any]) -> dict[str, Any]:
        copied = dict(obj)
        copied["metadata"] = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
        return copied

    return json_equal(bare(left), bare(right))


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value
