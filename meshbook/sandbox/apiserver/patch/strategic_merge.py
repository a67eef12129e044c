"""Kubernetes strategic merge patch on plain JSON dicts, driven by the schema tables of `patch_schema`.

This follows what the API server runs (apimachinery's `strategicpatch` with parallel lists merged and
unmatched nulls ignored), because kubectl's client-side apply and `kubectl patch` are built on it:
maps merge, `null` deletes, lists merge by their merge key (or as a set of scalars) or are replaced,
and the directives `$patch` (replace, delete), `$retainKeys`, `$setElementOrder/<list>` and
`$deleteFromPrimitiveList/<list>` behave as upstream, including the element-order rules (the order in
the patch wins, items only on the server keep their place relative to the live list).

Deliberate differences, all where upstream keeps raw patch content or drops data by accident:
values that are new to the object are stored with every directive stripped (upstream keeps nested
`$setElementOrder` and friends, and drops a new map carrying `$patch: replace`); `$patch: delete` on a
map removes the key rather than leaving `{}`; `$patch: merge` on a map is accepted as the default
(upstream rejects it; in a list it is rejected here too).
"""

from __future__ import annotations

import copy
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meshbook.sandbox.apiserver.patch.schema import DEFAULT, FieldPath, FieldStrategy, PatchError, schema_for

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ELEMENT_ORDER = "$setElementOrder"
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"


class _Drop(enum.Enum):
    """Marks a value removed by `$patch: delete`."""

    DROP = enum.auto()


DROP = _Drop.DROP


@dataclass(frozen=True)
class _Where:
    """Where the merge is: the schema path for look-ups and a readable path for error messages."""

    schema: Mapping[FieldPath, FieldStrategy]
    path: FieldPath
    shown: str

    def child(self, key: str) -> _Where:
        return _Where(self.schema, (*self.path, key), f"{self.shown}.{key}")

    def item(self, key: str | None, value: Any) -> _Where:
        label = f"{key}={json.dumps(value)}" if key else f"={json.dumps(value)}"
        return _Where(self.schema, self.path, f"{self.shown}[{label}]")

    def strategy(self, key: str) -> FieldStrategy:
        return self.schema.get((*self.path, key), DEFAULT)

    def __str__(self) -> str:
        return self.shown or "."


def strategic_merge(obj: dict[str, Any], patch: dict[str, Any], kind: str) -> dict[str, Any]:
    """Apply `patch` to a copy of `obj` with the merge rules of `kind`; neither input is changed."""
    if not isinstance(patch, dict):
        raise PatchError(f"a strategic merge patch must be a JSON object, not {_type_name(patch)}", code=400)
    where = _Where(schema_for(kind), (), "")
    merged = _merge_map(copy.deepcopy(obj), copy.deepcopy(patch), where)
    if merged is DROP:
        raise PatchError("$patch: delete at the top level would remove the whole object; send a DELETE")
    return merged


def _merge_map(original: dict[str, Any], patch: dict[str, Any], where: _Where) -> dict[str, Any] | _Drop:
    """Merge `patch` into `original` in place (both are private copies) and return the result."""
    if DIRECTIVE in patch:
        directive = patch.pop(DIRECTIVE)
        if directive == "replace":
            return _strip_map(patch, where)
        if directive == "delete":
            return DROP
        if directive != "merge":
            raise PatchError(f"unknown patch type {json.dumps(directive)} in the map at {where}", code=400)
    _apply_retain_keys(original, patch, where)
    _apply_element_orders(original, patch, where)
    deletions: list[tuple[str, Any]] = []
    for key, value in patch.items():
        if key.startswith(DELETE_FROM_PRIMITIVE_LIST):
            deletions.append((_directive_target(key, DELETE_FROM_PRIMITIVE_LIST, where), value))
        else:
            _merge_field(original, key, value, where)
    for field, items in deletions:
        _delete_from_primitive_list(original, field, items, where.child(field))
    return original


def _merge_field(original: dict[str, Any], key: str, value: Any, where: _Where) -> None:
    if value is None:
        original.pop(key, None)
        return
    strategy, here = where.strategy(key), where.child(key)
    current = original.get(key)
    if key not in original or current is None:
        merged: Any = _strip_directives(value, here)
    elif isinstance(current, dict) and isinstance(value, dict):
        merged = _strip_directives(value, here) if strategy.replace else _merge_map(current, value, here)
    elif isinstance(current, list) and isinstance(value, list) and strategy.merge:
        merged = _merge_list(current, value, strategy, here)
    else:
        merged = _strip_directives(value, here)
    if merged is DROP:
        original.pop(key, None)
    else:
        original[key] = merged


def _strip_directives(value: Any, where: _Where) -> Any:
    """A patch value with no counterpart in the object, minus directives and nulls; DROP if deleted."""
    if isinstance(value, dict):
        if DIRECTIVE in value:
            directive = value[DIRECTIVE]
            if directive == "delete":
                return DROP
            if directive not in ("replace", "merge"):
                raise PatchError(f"unknown patch type {json.dumps(directive)} in the map at {where}", code=400)
        return _strip_map(value, where)
    if isinstance(value, list):
        kept = (_strip_directives(item, where) for item in value)
        return [item for item in kept if item is not DROP]
    return value


def _strip_map(value: dict[str, Any], where: _Where) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, item in value.items():
        if item is None or key == DIRECTIVE or _is_directive_key(key):
            continue
        stripped = _strip_directives(item, where.child(key))
        if stripped is not DROP:
            result[key] = stripped
    return result


def _is_directive_key(key: str) -> bool:
    return key == RETAIN_KEYS or key.startswith((SET_ELEMENT_ORDER, DELETE_FROM_PRIMITIVE_LIST))


def _directive_target(key: str, prefix: str, where: _Where) -> str:
    """The list a `$setElementOrder/x` or `$deleteFromPrimitiveList/x` key is about."""
    target = key[len(prefix) + 1 :] if key.startswith(prefix + "/") else ""
    if not target:
        raise PatchError(f"invalid patch format at {where}: {json.dumps(key)} must be {prefix}/<field name>", code=400)
    return target


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any], where: _Where) -> None:
    """`$retainKeys`: drop every field of `original` not listed; the patch may only set listed fields."""
    if RETAIN_KEYS not in patch:
        return
    keys = patch.pop(RETAIN_KEYS)
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise PatchError(f"invalid patch format of retainKeys at {where}: expected a list of field names", code=400)
    for key, value in patch.items():
        if value is not None and key not in keys and not _is_directive_key(key):
            raise PatchError(
                f"invalid patch format of retainKeys at {where}: the patch sets {json.dumps(key)}, "
                f"which is not in $retainKeys {json.dumps(keys)}",
                code=400,
            )
    for key in [k for k in original if k not in keys]:
        del original[key]


def _apply_element_orders(original: dict[str, Any], patch: dict[str, Any], where: _Where) -> None:
    """`$setElementOrder/<list>`: merge that list now and order it as the directive says."""
    for key in [k for k in patch if k.startswith(SET_ELEMENT_ORDER)]:
        order = patch.pop(key)
        field = _directive_target(key, SET_ELEMENT_ORDER, where)
        here, strategy = where.child(field), where.strategy(field)
        if not isinstance(order, list):
            raise PatchError(f"invalid patch format of setElementOrder list at {here}: expected a list", code=400)
        current, patch_list = original.get(field), patch.pop(field, None)
        for name, value in (("live value", current), ("patch", patch_list)):
            if value is not None and not isinstance(value, list):
                raise PatchError(f"{here}: $setElementOrder needs a list, but the {name} is {_type_name(value)}")
        _check_order(patch_list or [], order, strategy.merge_key, here)
        if current is None and patch_list is None:
            continue
        if patch_list is None:
            merged = list(current or [])
        elif current is None or not strategy.merge:
            merged = _strip_directives(patch_list, here)
        else:
            merged = _merge_list(current, patch_list, strategy, here)
        key_name = strategy.merge_key
        if key_name is None and any(isinstance(item, dict) for item in merged):
            raise PatchError(f"{here}: $setElementOrder on a list of objects that has no merge key", code=400)
        in_order = [item for item in merged if _index(order, item, key_name) >= 0]
        server_only = [item for item in merged if _index(order, item, key_name) < 0]
        original[field] = _normalize_order(in_order, server_only, order, current or [], key_name)


def _check_order(patch_list: list[Any], order: list[Any], key: str | None, where: _Where) -> None:
    """The patch list must be a subsequence of the `$setElementOrder` list (deletions aside)."""
    items = [i for i in patch_list if not (isinstance(i, dict) and DIRECTIVE in i)]
    position = 0
    for entry in order:
        if position < len(items) and json_equal(_ident(items[position], key), _ident(entry, key)):
            position += 1
    if position < len(items):
        raise PatchError(
            f"{where}: the order of the patch list {json.dumps(patch_list)} does not match "
            f"its $setElementOrder list {json.dumps(order)}",
            code=400,
        )


def _merge_list(original: list[Any], patch: list[Any], strategy: FieldStrategy, where: _Where) -> list[Any]:
    """Merge two lists of a field with the merge strategy, then fix the order of the result."""
    if not original and not patch:
        return original
    elements = [*original, *patch]
    if any(isinstance(e, list) for e in elements):
        raise PatchError(f"{where}: lists of lists are not supported")
    maps = [isinstance(e, dict) for e in elements]
    if any(maps) and not all(maps):
        raise PatchError(f"{where}: the live list and the patch mix objects and scalars")
    if not any(maps):
        merged = _dedupe([*original, *patch])
        in_patch = [item for item in merged if _index(patch, item, None) >= 0]
        server_only = [item for item in merged if _index(patch, item, None) < 0]
        return _normalize_order(in_patch, server_only, patch, original, None)
    key = strategy.merge_key
    if key is None:
        raise PatchError(f"cannot merge lists without merge key for {where}", code=400)
    replaced, original, plain = _apply_list_directives(list(original), patch, key, where)
    if replaced:
        return [_strip_directives(item, where) for item in plain]
    server_order = list(original)
    for item in plain:
        if key not in item:
            raise PatchError(
                f"{where}: the patch item {json.dumps(item)} does not contain the merge key {json.dumps(key)}"
            )
        position = _index(original, item, key)
        here = where.item(key, item[key])
        if position >= 0:
            original[position] = _merge_map(original[position], item, here)
        else:
            original.append(_strip_directives(item, here))
    in_patch = [item for item in original if _index(plain, item, key) >= 0]
    server_only = [item for item in original if _index(plain, item, key) < 0]
    return _normalize_order(in_patch, server_only, plain, server_order, key)


def _apply_list_directives(
    original: list[Any], patch: list[Any], key: str, where: _Where
) -> tuple[bool, list[Any], list[Any]]:
    """Handle `{"$patch": ...}` items: delete by key, or replace the whole list; returns the rest."""
    plain: list[Any] = []
    replace = False
    for item in patch:
        if DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[DIRECTIVE]
        if directive == "delete":
            if key not in item:
                raise PatchError(
                    f"{where}: $patch: delete item {json.dumps(item)} lacks the merge key {json.dumps(key)}"
                )
            original = [o for o in original if not json_equal(_ident(o, key), item[key])]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise PatchError(f"{where}: merging lists cannot yet be specified in the patch", code=400)
        else:
            raise PatchError(f"unknown patch type {json.dumps(directive)} in the list at {where}", code=400)
    return replace, original, plain


def _normalize_order(
    patch_items: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    key: str | None,
) -> list[Any]:
    """Order patch items as the patch does, keep server-only items where they were relative to them."""
    patch_items = sorted(patch_items, key=lambda item: _rank(patch_order, item, key))
    server_only = sorted(server_only, key=lambda item: _rank(server_order, item, key))
    result: list[Any] = []
    left, right = 0, 0
    while left < len(server_only) or right < len(patch_items):
        if right >= len(patch_items):
            result.append(server_only[left])
            left += 1
        elif left >= len(server_only):
            result.append(patch_items[right])
            right += 1
        else:
            server_index = _index(server_order, server_only[left], key)
            patch_index = _index(server_order, patch_items[right], key)
            if 0 <= server_index < patch_index:
                result.append(server_only[left])
                left += 1
            else:
                result.append(patch_items[right])
                right += 1
    return result


def _delete_from_primitive_list(original: dict[str, Any], field: str, items: Any, where: _Where) -> None:
    if not isinstance(items, list) or any(isinstance(i, dict | list) for i in items):
        raise PatchError(f"invalid patch format of primitive list at {where}: expected a list of scalars", code=400)
    current = original.get(field)
    if isinstance(current, list):
        original[field] = [v for v in current if not any(json_equal(v, item) for item in items)]


def _ident(item: Any, key: str | None) -> Any:
    return item.get(key) if key is not None and isinstance(item, dict) else item


def _index(items: list[Any], item: Any, key: str | None) -> int:
    wanted = _ident(item, key)
    for position, candidate in enumerate(items):
        if json_equal(_ident(candidate, key), wanted):
            return position
    return -1


def _rank(items: list[Any], item: Any, key: str | None) -> int:
    position = _index(items, item, key)
    return position if position >= 0 else len(items)


def _dedupe(items: list[Any]) -> list[Any]:
    result: list[Any] = []
    for item in items:
        if not any(json_equal(item, seen) for seen in result):
            result.append(item)
    return result


def json_equal(left: Any, right: Any) -> bool:
    """Equality as JSON sees it: 1 == 1.0, but true is not 1."""
    if isinstance(left, bool) or isinstance(right, bool):
        return type(left) is type(right) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(json_equal(a, b) for a, b in zip(left, right, strict=True))
    if isinstance(left, dict | list) or isinstance(right, dict | list):
        return False
    return bool(left == right)


def _type_name(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")
