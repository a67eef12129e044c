"""Server-side apply and managedFields bookkeeping: merging, ownership, conflicts, force."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from meshbook.sandbox.apiserver.patch.dispatch import (
    ConflictError,
    PatchError,
    apply_server_side,
    fields_v1_of,
    record_update,
)

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LATER = datetime(2024, 5, 1, 13, 30, 15, tzinfo=UTC)

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "web:1", "ports": [{"containerPort": 80}]}]},
        },
    },
}

DEPLOYMENT_FIELDS: dict[str, Any] = {
    "f:metadata": {"f:labels": {"f:app": {}}},
    "f:spec": {
        "f:replicas": {},
        "f:selector": {"f:matchLabels": {"f:app": {}}},
        "f:template": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:containers": {
                    'k:{"name":"app"}': {
                        ".": {},
                        "f:image": {},
                        "f:name": {},
                        "f:ports": {'k:{"containerPort":80}': {".": {}, "f:containerPort": {}}},
                    }
                }
            },
        },
    },
}


def _without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    copied = copy.deepcopy(obj)
    copied["metadata"].pop("managedFields", None)
    return copied


def _config(**spec: Any) -> dict[str, Any]:
    config = copy.deepcopy(DEPLOYMENT)
    config["spec"].update(spec)
    return config


def _created_by_client_side_apply() -> dict[str, Any]:
    return record_update(None, DEPLOYMENT, "kubectl-client-side-apply", "Deployment", now=NOW)


def test_apply_creates_with_an_apply_managed_fields_entry() -> None:
    created = apply_server_side(None, DEPLOYMENT, "kubectl", False, "Deployment", now=NOW)
    assert _without_managed_fields(created) == DEPLOYMENT
    assert created["metadata"]["managedFields"] == [
        {
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "apps/v1",
            "time": "2024-05-01T12:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": DEPLOYMENT_FIELDS,
        }
    ]
    assert "managedFields" not in DEPLOYMENT["metadata"]


def test_second_manager_merges_by_key_and_gets_its_own_entry() -> None:
    live = apply_server_side(None, DEPLOYMENT, "kubectl", False, "Deployment", now=NOW)
    before = copy.deepcopy(live)
    sidecar = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "annotations": {"injected": "true"}},
        "spec": {"template": {"spec": {"containers": [{"name": "proxy", "image": "proxy:1"}]}}},
    }
    result = apply_server_side(live, sidecar, "injector", False, "Deployment", now=LATER)
    assert live == before
    assert result["metadata"]["annotations"] == {"injected": "true"}
    assert result["spec"]["template"]["spec"]["containers"] == [
        {"name": "app", "image": "web:1", "ports": [{"containerPort": 80}]},
        {"name": "proxy", "image": "proxy:1"},
    ]
    assert result["spec"]["replicas"] == 2
    entries = result["metadata"]["managedFields"]
    assert [(e["manager"], e["time"]) for e in entries] == [
        ("kubectl", "2024-05-01T12:00:00Z"),
        ("injector", "2024-05-01T13:30:15Z"),
    ]
    assert entries[0]["fieldsV1"] == DEPLOYMENT_FIELDS
    assert entries[1]["fieldsV1"] == {
        "f:metadata": {"f:annotations": {"f:injected": {}}},
        "f:spec": {
            "f:template": {"f:spec": {"f:containers": {'k:{"name":"proxy"}': {".": {}, "f:image": {}, "f:name": {}}}}}
        },
    }


def test_conflict_with_a_client_side_apply_manager_without_force() -> None:
    live = _created_by_client_side_apply()
    with pytest.raises(ConflictError) as caught:
        apply_server_side(live, _config(replicas=3), "kubectl", False, "Deployment", now=LATER)
    error = caught.value
    assert str(error) == (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas'
    )
    assert error.code == 409
    assert isinstance(error, PatchError)
    assert error.causes() == [
        {
            "type": "FieldManagerConflict",
            "message": 'conflict with "kubectl-client-side-apply" using apps/v1',
            "field": ".spec.replicas",
        }
    ]


def test_several_conflicts_are_listed_per_manager() -> None:
    config = _config(replicas=3)
    config["spec"]["template"]["spec"]["containers"][0]["image"] = "web:2"
    with pytest.raises(ConflictError) as caught:
        apply_server_side(_created_by_client_side_apply(), config, "kubectl", False, "Deployment", now=LATER)
    assert str(caught.value) == (
        'Apply failed with 2 conflicts: conflicts with "kubectl-client-side-apply" using apps/v1:\n'
        "- .spec.replicas\n"
        '- .spec.template.spec.containers[name="app"].image'
    )


def test_force_takes_ownership_of_conflicting_fields_only() -> None:
    live = _created_by_client_side_apply()
    result = apply_server_side(live, _config(replicas=3), "kubectl", True, "Deployment", now=LATER)
    assert result["spec"]["replicas"] == 3
    applier, updater = result["metadata"]["managedFields"]
    assert (applier["manager"], applier["operation"], applier["fieldsV1"]) == (
        "kubectl",
        "Apply",
        DEPLOYMENT_FIELDS,
    )
    assert (updater["manager"], updater["operation"]) == ("kubectl-client-side-apply", "Update")
    assert "f:replicas" not in updater["fieldsV1"]["f:spec"]
    assert updater["fieldsV1"]["f:spec"]["f:selector"] == {"f:matchLabels": {".": {}, "f:app": {}}}


def test_applying_the_same_value_shares_ownership() -> None:
    result = apply_server_side(_created_by_client_side_apply(), _config(), "kubectl", False, "Deployment", now=LATER)
    assert [e["manager"] for e in result["metadata"]["managedFields"]] == [
        "kubectl",
        "kubectl-client-side-apply",
    ]
    assert all("f:replicas" in e["fieldsV1"]["f:spec"] for e in result["metadata"]["managedFields"])


def _config_map(labels: dict[str, str], **data: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "labels": labels},
    }
    return {**config, "data": data} if data else config


def test_fields_no_longer_applied_are_removed_unless_someone_else_owns_them() -> None:
    live = apply_server_side(
        None, _config_map({"a": "1", "b": "2", "c": "3"}, x="1"), "kubectl", False, "ConfigMap", now=NOW
    )
    live = apply_server_side(live, _config_map({"c": "3"}), "labeler", False, "ConfigMap", now=NOW)
    result = apply_server_side(live, _config_map({"a": "1"}, x="1"), "kubectl", False, "ConfigMap", now=NOW)
    assert result["metadata"]["labels"] == {"a": "1", "c": "3"}
    assert result["data"] == {"x": "1"}
    mine = result["metadata"]["managedFields"][0]
    assert mine["fieldsV1"] == {"f:data": {"f:x": {}}, "f:metadata": {"f:labels": {"f:a": {}}}}


def test_a_keyed_list_item_no_longer_applied_is_removed_whole() -> None:
    """A webhook the applier drops goes with all its fields, not just those removed before its name."""

    def config(*names: str) -> dict[str, Any]:
        hooks = [{"name": n, "rules": [{"operations": ["CREATE"]}], "sideEffects": "None"} for n in names]
        return {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "w"},
            "webhooks": hooks,
        }

    kind = "MutatingWebhookConfiguration"
    live = apply_server_side(None, config("a.x.io", "b.x.io"), "meshbook", False, kind, now=NOW)
    result = apply_server_side(live, config("a.x.io"), "meshbook", False, kind, now=NOW)
    assert [hook["name"] for hook in result["webhooks"]] == ["a.x.io"]
    assert result["webhooks"] == config("a.x.io")["webhooks"]


def test_an_object_without_managed_fields_is_owned_by_before_first_apply() -> None:
    live = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"x": "1"}}
    with pytest.raises(ConflictError) as caught:
        apply_server_side(live, {**live, "data": {"x": "2"}}, "kubectl", False, "ConfigMap", now=NOW)
    assert str(caught.value) == 'Apply failed with 1 conflict: conflict with "before-first-apply" using v1: .data.x'


def test_a_no_op_apply_keeps_the_timestamp() -> None:
    first = apply_server_side(None, DEPLOYMENT, "kubectl", False, "Deployment", now=NOW)
    again = apply_server_side(first, DEPLOYMENT, "kubectl", False, "Deployment", now=LATER)
    assert again == first


def test_set_lists_merge_and_are_owned_by_value() -> None:
    first = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "finalizers": ["a"]}}
    live = apply_server_side(None, first, "m1", False, "ConfigMap", now=NOW)
    second = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"finalizers": ["b"]}}
    result = apply_server_side(live, second, "m2", False, "ConfigMap", now=LATER)
    assert result["metadata"]["finalizers"] == ["a", "b"]
    assert result["metadata"]["managedFields"][1]["fieldsV1"] == {"f:metadata": {"f:finalizers": {'v:"b"': {}}}}


@pytest.mark.parametrize(
    ("config", "manager", "message", "code"),
    [
        (
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "managedFields": []}},
            "kubectl",
            "metadata.managedFields must be nil",
            400,
        ),
        (
            {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"image": "x"}]}},
            "kubectl",
            '.spec.containers: element 0: associative list with keys has an element that omits key field "name"',
            422,
        ),
        (
            {"apiVersion": "v1", "kind": "Pod"},
            "",
            "fieldManager: Required value: is required for apply patch",
            422,
        ),
    ],
)
def test_invalid_apply_requests(config: dict[str, Any], manager: str, message: str, code: int) -> None:
    with pytest.raises(PatchError) as caught:
        apply_server_side(None, config, manager, False, str(config["kind"]), now=NOW)
    assert (str(caught.value), caught.value.code) == (message, code)


def test_record_update_moves_changed_fields_to_the_writer() -> None:
    created = record_update(None, _config_map({"a": "1"}, x="1"), "kubectl-create", "ConfigMap", now=NOW)
    assert created["metadata"]["managedFields"] == [
        {
            "manager": "kubectl-create",
            "operation": "Update",
            "apiVersion": "v1",
            "time": "2024-05-01T12:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {".": {}, "f:x": {}}, "f:metadata": {"f:labels": {".": {}, "f:a": {}}}},
        }
    ]
    edited = copy.deepcopy(created)
    edited["data"] = {"x": "2", "y": "3"}
    del edited["metadata"]["labels"]
    updated = record_update(created, edited, "kubectl-edit", "ConfigMap", now=LATER)
    assert [(e["manager"], e["fieldsV1"]) for e in updated["metadata"]["managedFields"]] == [
        ("kubectl-create", {"f:data": {}}),  # still owns the map itself, which it created
        ("kubectl-edit", {"f:data": {"f:x": {}, "f:y": {}}}),
    ]


def test_record_update_takes_managed_fields_sent_by_the_client() -> None:
    created = record_update(None, _config_map({}, x="1"), "kubectl-client-side-apply", "ConfigMap", now=NOW)
    migrated = copy.deepcopy(created)
    migrated["metadata"]["managedFields"][0].update(manager="kubectl", operation="Apply")
    result = record_update(created, migrated, "kubectl", "ConfigMap", now=LATER)
    assert [(e["manager"], e["operation"]) for e in result["metadata"]["managedFields"]] == [("kubectl", "Apply")]


def test_fields_v1_of_an_object() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "labels": {"a": "b"}},
        "spec": {"containers": [{"name": "c"}]},
    }
    assert fields_v1_of(pod) == {
        "f:metadata": {"f:labels": {".": {}, "f:a": {}}},
        "f:spec": {"f:containers": {'k:{"name":"c"}': {".": {}, "f:name": {}}}},
    }
