"""The API server's PATCH semantics on plain dict objects: JSON patch, merge patch, strategic merge, apply.

Every function returns a new object and leaves its inputs untouched; failures raise `PatchError` (or
`ConflictError` for server-side apply) whose `code` is the HTTP status a real API server answers with.
JSON patch (RFC 6902) and JSON merge patch (RFC 7386) live here; strategic merge patch and server-side
apply live in their own modules and are re-exported so callers need only this one.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from meshbook.sandbox.apiserver.patch.managed_fields import fields_v1_of, record_update
from meshbook.sandbox.apiserver.patch.schema import PatchError, is_builtin_kind, merge_key_for
from meshbook.sandbox.apiserver.patch.server_side_apply import ConflictError, FieldConflict, apply_server_side
from meshbook.sandbox.apiserver.patch.strategic_merge import json_equal, strategic_merge

__all__ = [
    "ConflictError",
    "FieldConflict",
    "PatchError",
    "apply_json_patch",
    "apply_merge_patch",
    "apply_server_side",
    "apply_strategic_merge_patch",
    "fields_v1_of",
    "is_builtin_kind",
    "merge_key_for",
    "record_update",
]

_OPERATIONS = ("add", "remove", "replace", "move", "copy", "test")
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")
_BAD_ESCAPE = re.compile(r"~(?![01])")


def apply_strategic_merge_patch(obj: dict[str, Any], patch: dict[str, Any], kind: str) -> dict[str, Any]:
    """Strategic merge patch with the merge keys of built-in `kind`; other kinds get merge patch semantics."""
    if not is_builtin_kind(kind):
        return apply_merge_patch(obj, patch)
    return strategic_merge(obj, patch, kind)


def apply_merge_patch(obj: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386: objects merge recursively, `null` deletes a key, anything else replaces."""
    if not isinstance(patch, dict):
        raise PatchError("a merge patch of an object must itself be a JSON object", code=400)
    merged = _merge_patch(copy.deepcopy(obj), patch)
    assert isinstance(merged, dict)  # a dict patch always yields a dict
    return merged


def _merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = target if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


def apply_json_patch(obj: dict[str, Any], ops: list[Any]) -> dict[str, Any]:
    """RFC 6902, operations applied in order, all or nothing."""
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations", code=400)
    doc: Any = copy.deepcopy(obj)
    for number, op in enumerate(ops):
        doc = _JsonPatchOp(op, number).apply(doc)
    if not isinstance(doc, dict):
        raise PatchError(f"the patched document must be a JSON object, not {json.dumps(doc)}")
    return doc


class _JsonPatchOp:
    """One validated RFC 6902 operation; error messages name the operation, its path and the problem."""

    def __init__(self, op: Any, number: int) -> None:
        self.label = f"JSON patch operation {number}"
        if not isinstance(op, dict):
            raise PatchError(f"{self.label}: expected an object, got {json.dumps(op)}", code=400)
        self.op = op.get("op")
        if self.op not in _OPERATIONS:
            raise PatchError(f"{self.label}: unknown op {json.dumps(self.op)}; expected one of {_OPERATIONS}", code=400)
        self.path_text = op.get("path")
        self.label = f'JSON patch operation {number} ("{self.op}" at {json.dumps(self.path_text)})'
        self.path = self._pointer(self.path_text, "path")
        self.from_path: list[str] = []
        if self.op in ("move", "copy"):
            self.from_path = self._pointer(op.get("from"), "from")
        if self.op in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f'{self.label}: missing "value"', code=400)
        self.value = op.get("value")

    def _pointer(self, text: Any, member: str) -> list[str]:
        if not isinstance(text, str):
            raise PatchError(
                f'{self.label}: "{member}" must be a JSON pointer string, got {json.dumps(text)}', code=400
            )
        if text == "":
            return []
        if not text.startswith("/") or _BAD_ESCAPE.search(text):
            raise PatchError(f'{self.label}: "{member}" {json.dumps(text)} is not a valid JSON pointer', code=400)
        return [token.replace("~1", "/").replace("~0", "~") for token in text.split("/")[1:]]

    def apply(self, doc: Any) -> Any:
        if self.op == "add":
            return self._add(doc, self.path, copy.deepcopy(self.value))
        if self.op == "remove":
            self._remove(doc, self.path)
            return doc
        if self.op == "replace":
            return self._replace(doc, self.path, copy.deepcopy(self.value))
        if self.op == "test":
            actual = self._get(doc, self.path)
            if not json_equal(actual, self.value):
                raise PatchError(
                    f"{self.label}: test failed: the value is {json.dumps(actual)}, expected {json.dumps(self.value)}"
                )
            return doc
        value = self._get(doc, self.from_path)
        if self.op == "copy":
            return self._add(doc, self.path, copy.deepcopy(value))
        if self.from_path == self.path:
            return doc
        if self.path[: len(self.from_path)] == self.from_path:
            raise PatchError(f"{self.label}: cannot move {_pointer_text(self.from_path)} into one of its children")
        self._remove(doc, self.from_path)
        return self._add(doc, self.path, value)

    def _get(self, doc: Any, path: list[str]) -> Any:
        for depth, token in enumerate(path):
            doc = self._child(doc, token, path[:depth])
        return doc

    def _child(self, container: Any, token: str, at: list[str]) -> Any:
        if isinstance(container, dict):
            if token not in container:
                raise PatchError(
                    f"{self.label}: the path does not exist: no key {json.dumps(token)} at {_pointer_text(at)}"
                )
            return container[token]
        if isinstance(container, list):
            return container[self._index(container, token, at, allow_end=False)]
        raise PatchError(f"{self.label}: the path does not exist: {_pointer_text(at)} is {json.dumps(container)}")

    def _index(self, array: list[Any], token: str, at: list[str], *, allow_end: bool) -> int:
        if token == "-" and allow_end:
            return len(array)
        if not _ARRAY_INDEX.fullmatch(token):
            raise PatchError(f"{self.label}: {json.dumps(token)} is not an array index of {_pointer_text(at)}")
        index = int(token)
        if index > len(array) or (index == len(array) and not allow_end):
            raise PatchError(
                f"{self.label}: index {index} is out of range for {_pointer_text(at)} (length {len(array)})"
            )
        return index

    def _add(self, doc: Any, path: list[str], value: Any) -> Any:
        if not path:
            return value
        parent = self._get(doc, path[:-1])
        if isinstance(parent, dict):
            parent[path[-1]] = value
        elif isinstance(parent, list):
            parent.insert(self._index(parent, path[-1], path[:-1], allow_end=True), value)
        else:
            raise PatchError(f"{self.label}: cannot add to {_pointer_text(path[:-1])}, it is {json.dumps(parent)}")
        return doc

    def _remove(self, doc: Any, path: list[str]) -> None:
        if not path:
            raise PatchError(f"{self.label}: cannot remove the whole document")
        parent = self._get(doc, path[:-1])
        self._child(parent, path[-1], path[:-1])  # raises if missing
        if isinstance(parent, dict):
            del parent[path[-1]]
        else:
            del parent[self._index(parent, path[-1], path[:-1], allow_end=False)]

    def _replace(self, doc: Any, path: list[str], value: Any) -> Any:
        if not path:
            return value
        parent = self._get(doc, path[:-1])
        self._child(parent, path[-1], path[:-1])  # raises if missing
        if isinstance(parent, dict):
            parent[path[-1]] = value
        else:
            parent[self._index(parent, path[-1], path[:-1], allow_end=False)] = value
        return doc


def _pointer_text(path: list[str]) -> str:
    if not path:
        return "the document root"
    return json.dumps("".join("/" + t.replace("~", "~0").replace("/", "~1") for t in path))
