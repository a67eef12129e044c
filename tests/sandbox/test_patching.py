"""JSON patch (RFC 6902) and JSON merge patch (RFC 7386) as the API server applies them."""

from __future__ import annotations

from typing import Any

import pytest

from meshbook.sandbox.apiserver.patch.dispatch import (
    PatchError,
    apply_json_patch,
    apply_merge_patch,
)

CONFIG_MAP: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "cfg", "labels": {"app": "web"}, "annotations": {"example.com/a~b": "1"}},
    "data": {"items": "x"},
    "list": [1, 2, 3],
}


def _json_patch(*ops: dict[str, Any]) -> dict[str, Any]:
    return apply_json_patch(CONFIG_MAP, list(ops))


def _json_patch_error(*ops: dict[str, Any]) -> PatchError:
    with pytest.raises(PatchError) as caught:
        apply_json_patch(CONFIG_MAP, list(ops))
    return caught.value


def test_json_patch_add_to_object_array_and_end_of_array() -> None:
    result = _json_patch(
        {"op": "add", "path": "/metadata/labels/tier", "value": "front"},
        {"op": "add", "path": "/list/1", "value": 9},
        {"op": "add", "path": "/list/-", "value": 4},
    )
    assert result["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert result["list"] == [1, 9, 2, 3, 4]
    assert CONFIG_MAP["list"] == [1, 2, 3]  # the input is untouched


def test_json_patch_add_at_root_replaces_the_document() -> None:
    assert _json_patch({"op": "add", "path": "", "value": {"kind": "Other"}}) == {"kind": "Other"}


def test_json_patch_remove_replace_move_copy() -> None:
    result = _json_patch(
        {"op": "remove", "path": "/list/0"},
        {"op": "replace", "path": "/data/items", "value": "y"},
        {"op": "move", "from": "/metadata/labels/app", "path": "/metadata/annotations/app"},
        {"op": "copy", "from": "/data", "path": "/copied"},
    )
    assert result["list"] == [2, 3]
    assert result["metadata"] == {
        "name": "cfg",
        "labels": {},
        "annotations": {"example.com/a~b": "1", "app": "web"},
    }
    assert result["copied"] == {"items": "y"}
    result["copied"]["items"] = "changed"
    assert result["data"] == {"items": "y"}  # copy is deep


def test_json_patch_pointer_escapes() -> None:
    result = _json_patch(
        {"op": "test", "path": "/metadata/annotations/example.com~1a~0b", "value": "1"},
        {"op": "add", "path": "/metadata/labels/example.com~1tier", "value": "back"},
    )
    assert result["metadata"]["labels"] == {"app": "web", "example.com/tier": "back"}


def test_json_patch_test_passes_and_fails_with_values_in_message() -> None:
    assert _json_patch({"op": "test", "path": "/list", "value": [1, 2.0, 3]}) == CONFIG_MAP
    error = _json_patch_error(
        {"op": "add", "path": "/x", "value": 1}, {"op": "test", "path": "/data/items", "value": "z"}
    )
    assert str(error) == 'JSON patch operation 1 ("test" at "/data/items"): test failed: the value is "x", expected "z"'
    assert error.code == 422
    error = _json_patch_error({"op": "test", "path": "/list/0", "value": True})
    assert str(error) == 'JSON patch operation 0 ("test" at "/list/0"): test failed: the value is 1, expected true'


@pytest.mark.parametrize(
    ("op", "message"),
    [
        (
            {"op": "remove", "path": "/metadata/labels/missing"},
            'JSON patch operation 0 ("remove" at "/metadata/labels/missing"): the path does not exist: '
            'no key "missing" at "/metadata/labels"',
        ),
        (
            {"op": "replace", "path": "/spec/replicas", "value": 2},
            'JSON patch operation 0 ("replace" at "/spec/replicas"): the path does not exist: '
            'no key "spec" at the document root',
        ),
        (
            {"op": "add", "path": "/list/4", "value": 0},
            'JSON patch operation 0 ("add" at "/list/4"): index 4 is out of range for "/list" (length 3)',
        ),
        (
            {"op": "remove", "path": "/list/01"},
            'JSON patch operation 0 ("remove" at "/list/01"): "01" is not an array index of "/list"',
        ),
        (
            {"op": "move", "from": "/metadata", "path": "/metadata/inner"},
            'JSON patch operation 0 ("move" at "/metadata/inner"): cannot move "/metadata" into one of its children',
        ),
    ],
)
def test_json_patch_inapplicable_operations_are_422(op: dict[str, Any], message: str) -> None:
    error = _json_patch_error(op)
    assert (str(error), error.code) == (message, 422)


@pytest.mark.parametrize(
    ("op", "message"),
    [
        ({"op": "frob", "path": "/a"}, 'JSON patch operation 0: unknown op "frob"; expected one of '),
        ({"op": "add", "path": "/a"}, 'JSON patch operation 0 ("add" at "/a"): missing "value"'),
        (
            {"op": "add", "path": "a", "value": 1},
            'JSON patch operation 0 ("add" at "a"): "path" "a" is not a valid',
        ),
        (
            {"op": "add", "path": "/a~2", "value": 1},
            'JSON patch operation 0 ("add" at "/a~2"): "path" "/a~2" is not',
        ),
        (
            {"op": "copy", "path": "/a"},
            'JSON patch operation 0 ("copy" at "/a"): "from" must be a JSON pointer',
        ),
    ],
)
def test_json_patch_malformed_operations_are_400(op: dict[str, Any], message: str) -> None:
    error = _json_patch_error(op)
    assert str(error).startswith(message)
    assert error.code == 400


def test_merge_patch_null_deletes_and_lists_replace() -> None:
    patch = {
        "metadata": {"labels": {"app": None, "tier": "db"}, "annotations": None},
        "list": [7],
        "new": {"a": None},
    }
    result = apply_merge_patch(CONFIG_MAP, patch)
    assert result == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "labels": {"tier": "db"}},
        "data": {"items": "x"},
        "list": [7],
        "new": {},
    }
    assert CONFIG_MAP["metadata"]["labels"] == {"app": "web"}
    with pytest.raises(PatchError) as caught:
        apply_merge_patch(CONFIG_MAP, [1])  # type: ignore[arg-type]
    assert caught.value.code == 400
