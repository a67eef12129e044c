"""Strategic merge patch: the merge keys of built-in kinds, the directives kubectl sends, upstream's order."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from meshbook.sandbox.apiserver.patch.dispatch import (
    PatchError,
    apply_strategic_merge_patch,
    is_builtin_kind,
    merge_key_for,
)


def _pod(containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": containers, **spec},
    }


def _names(obj: dict[str, Any], path: str = "spec.containers", key: str = "name") -> list[Any]:
    node: Any = obj
    for part in path.split("."):
        node = node[part]
    return [item[key] for item in node]


POD = _pod(
    [
        {
            "name": "app",
            "image": "app:1",
            "ports": [{"containerPort": 80}],
            "env": [{"name": "A", "value": "1"}],
        },
        {"name": "side", "image": "side:1"},
    ]
)


def test_smp_modifies_container_by_name_keeping_other_fields() -> None:
    result = apply_strategic_merge_patch(POD, {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}, "Pod")
    assert result["spec"]["containers"] == [
        {
            "name": "app",
            "image": "app:2",
            "ports": [{"containerPort": 80}],
            "env": [{"name": "A", "value": "1"}],
        },
        {"name": "side", "image": "side:1"},
    ]
    assert POD["spec"]["containers"][0]["image"] == "app:1"


def test_smp_new_container_goes_first_as_upstream_without_set_element_order() -> None:
    result = apply_strategic_merge_patch(POD, {"spec": {"containers": [{"name": "new", "image": "n"}]}}, "Pod")
    assert _names(result) == ["new", "app", "side"]


def test_smp_patch_delete_removes_container() -> None:
    patch = {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}
    assert _names(apply_strategic_merge_patch(POD, patch, "Pod")) == ["app"]


def test_smp_env_merged_by_name_with_null_deleting_a_field() -> None:
    patch = {
        "spec": {"containers": [{"name": "app", "env": [{"name": "B", "value": "2"}, {"name": "A", "value": None}]}]}
    }
    result = apply_strategic_merge_patch(POD, patch, "Pod")
    assert result["spec"]["containers"][0]["env"] == [{"name": "B", "value": "2"}, {"name": "A"}]


def test_smp_container_ports_merge_by_container_port() -> None:
    patch = {"spec": {"containers": [{"name": "app", "ports": [{"containerPort": 80, "name": "http"}]}]}}
    result = apply_strategic_merge_patch(POD, patch, "Pod")
    assert result["spec"]["containers"][0]["ports"] == [{"containerPort": 80, "name": "http"}]


def test_set_element_order_orders_patch_items_and_keeps_server_only_items_in_place() -> None:
    live = _pod([{"name": n} for n in ("1", "2", "9", "3", "4")])
    patch = {"spec": {"$setElementOrder/containers": [{"name": n} for n in ("2", "1", "4", "3")]}}
    assert _names(apply_strategic_merge_patch(live, patch, "Pod")) == ["2", "1", "9", "4", "3"]


def test_set_element_order_of_a_primitive_list() -> None:
    live = {"kind": "Pod", "metadata": {"finalizers": ["a", "b", "c"]}}
    patch = {"metadata": {"$setElementOrder/finalizers": ["c", "a", "b", "d"], "finalizers": ["d"]}}
    assert apply_strategic_merge_patch(live, patch, "Pod")["metadata"]["finalizers"] == ["c", "a", "b", "d"]


def test_set_element_order_must_agree_with_the_patch_list() -> None:
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "app"}],
            "containers": [{"name": "side", "image": "x"}],
        }
    }
    with pytest.raises(PatchError) as caught:
        apply_strategic_merge_patch(POD, patch, "Pod")
    assert str(caught.value).startswith(".spec.containers: the order of the patch list")
    assert caught.value.code == 400


def test_finalizers_merge_as_a_set_and_delete_from_primitive_list() -> None:
    live = {"kind": "Pod", "metadata": {"finalizers": ["a", "b", "c"]}}
    added = apply_strategic_merge_patch(live, {"metadata": {"finalizers": ["b", "x"]}}, "Pod")
    assert added["metadata"]["finalizers"] == ["a", "b", "x", "c"]
    deleted = apply_strategic_merge_patch(live, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}, "Pod")
    assert deleted["metadata"]["finalizers"] == ["a", "c"]
    untouched = apply_strategic_merge_patch({"kind": "Pod"}, {"$deleteFromPrimitiveList/finalizers": ["b"]}, "Pod")
    assert untouched == {"kind": "Pod"}


DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{old}"}},
    "spec": {
        "replicas": 2,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "image": "web:1",
                        "env": [{"name": "A", "value": "1"}],
                        "imagePullPolicy": "Always",
                    },
                    {"name": "proxy", "image": "proxy:1"},
                ],
                "tolerations": [{"key": "a", "operator": "Exists"}],
            },
        },
    },
}


def test_retain_keys_clears_fields_not_listed() -> None:
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    assert apply_strategic_merge_patch(DEPLOYMENT, patch, "Deployment")["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_rejects_a_patch_setting_an_unlisted_field() -> None:
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": {"maxSurge": 1}}}}
    with pytest.raises(PatchError) as caught:
        apply_strategic_merge_patch(DEPLOYMENT, patch, "Deployment")
    assert str(caught.value) == (
        'invalid patch format of retainKeys at .spec.strategy: the patch sets "rollingUpdate", '
        'which is not in $retainKeys ["type"]'
    )
    assert caught.value.code == 400


def test_patch_replace_on_a_map_and_on_a_list() -> None:
    patch = {
        "metadata": {"annotations": {"$patch": "replace", "only": "this"}},
        "spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "solo", "image": "s"}]}}},
    }
    result = apply_strategic_merge_patch(DEPLOYMENT, patch, "Deployment")
    assert result["metadata"]["annotations"] == {"only": "this"}
    assert result["spec"]["template"]["spec"]["containers"] == [{"name": "solo", "image": "s"}]


def test_kubectl_apply_patch_for_a_deployment() -> None:
    """The patch kubectl 1.27-1.33 `apply` sends when the image changes and an env var is added."""
    patch = json.loads(
        """{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{new}"}},
        "spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"app"},{"name":"proxy"}],
        "containers":[{"$setElementOrder/env":[{"name":"A"},{"name":"B"}],"env":[{"name":"B","value":"2"}],
        "image":"web:2","name":"app"}]}}}}"""
    )
    result = apply_strategic_merge_patch(DEPLOYMENT, patch, "Deployment")
    expected = copy.deepcopy(DEPLOYMENT)
    expected["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = "{new}"
    app = expected["spec"]["template"]["spec"]["containers"][0]
    app["image"] = "web:2"
    app["env"].append({"name": "B", "value": "2"})
    assert result == expected


def test_tolerations_are_replaced_whole() -> None:
    patch = {"spec": {"template": {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}}}
    result = apply_strategic_merge_patch(DEPLOYMENT, patch, "Deployment")
    assert result["spec"]["template"]["spec"]["tolerations"] == [{"key": "b", "operator": "Exists"}]


def test_service_ports_merge_by_port() -> None:
    service = {
        "kind": "Service",
        "spec": {"ports": [{"port": 80, "targetPort": 8080, "name": "http"}, {"port": 443, "name": "https"}]},
    }
    result = apply_strategic_merge_patch(service, {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}, "Service")
    assert result["spec"]["ports"] == [
        {"port": 80, "targetPort": 9090, "name": "http"},
        {"port": 443, "name": "https"},
    ]


def test_webhooks_merge_by_name() -> None:
    config = {
        "kind": "MutatingWebhookConfiguration",
        "webhooks": [
            {"name": "a.example.com", "failurePolicy": "Fail"},
            {"name": "b.example.com", "sideEffects": "None"},
        ],
    }
    patch = {"webhooks": [{"name": "b.example.com", "failurePolicy": "Ignore"}]}
    result = apply_strategic_merge_patch(config, patch, "MutatingWebhookConfiguration")
    assert result["webhooks"] == [
        {"name": "a.example.com", "failurePolicy": "Fail"},
        {"name": "b.example.com", "sideEffects": "None", "failurePolicy": "Ignore"},
    ]


def test_rbac_rules_are_replaced_and_conditions_merge_by_type() -> None:
    role = {"kind": "Role", "rules": [{"verbs": ["get"], "resources": ["pods"]}]}
    result = apply_strategic_merge_patch(role, {"rules": [{"verbs": ["list"], "resources": ["secrets"]}]}, "Role")
    assert result["rules"] == [{"verbs": ["list"], "resources": ["secrets"]}]
    pod = {
        "kind": "Pod",
        "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Scheduled"}]},
    }
    patched = apply_strategic_merge_patch(pod, {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, "Pod")
    assert patched["status"]["conditions"] == [{"type": "Ready", "status": "True"}, {"type": "Scheduled"}]


def test_cronjob_pod_template_uses_pod_merge_keys() -> None:
    cron = {
        "kind": "CronJob",
        "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}}},
    }
    patch = {"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}}}
    result = apply_strategic_merge_patch(cron, patch, "CronJob")
    assert result["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"] == [{"name": "c", "image": "i"}]


def test_unknown_kinds_get_merge_patch_semantics() -> None:
    widget = {"kind": "Widget", "spec": {"items": [{"name": "a"}], "keep": 1}}
    result = apply_strategic_merge_patch(widget, {"spec": {"items": [{"name": "b"}], "keep": None}}, "Widget")
    assert result == {"kind": "Widget", "spec": {"items": [{"name": "b"}]}}


def test_new_values_are_stored_without_directives_or_nulls() -> None:
    patch = {"spec": {"template": {"spec": {"volumes": [{"name": "v", "emptyDir": {}, "$retainKeys": ["name"]}]}}}}
    result = apply_strategic_merge_patch(DEPLOYMENT, patch, "Deployment")
    assert result["spec"]["template"]["spec"]["volumes"] == [{"name": "v", "emptyDir": {}}]


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (
            {"spec": {"containers": [{"image": "x"}]}},
            '.spec.containers: the patch item {"image": "x"} does not contain the merge key "name"',
        ),
        (
            {"spec": {"containers": [{"name": "app", "$patch": "merge"}]}},
            ".spec.containers: merging lists cannot",
        ),
        ({"spec": {"$patch": "bogus"}}, 'unknown patch type "bogus" in the map at .spec'),
        (
            {"$setElementOrder": []},
            'invalid patch format at .: "$setElementOrder" must be $setElementOrder/<field name>',
        ),
    ],
)
def test_strategic_merge_errors_name_the_path(patch: dict[str, Any], message: str) -> None:
    with pytest.raises(PatchError) as caught:
        apply_strategic_merge_patch(POD, patch, "Pod")
    assert str(caught.value).startswith(message)


def test_merge_key_table_lookups() -> None:
    assert merge_key_for("Deployment", ("spec", "template", "spec", "containers")) == "name"
    assert merge_key_for("Pod", ("spec", "initContainers", "ports")) == "containerPort"
    assert merge_key_for("StatefulSet", ("spec", "template", "spec", "containers", "volumeMounts")) == "mountPath"
    assert merge_key_for("Service", ("spec", "ports")) == "port"
    assert merge_key_for("ConfigMap", ("metadata", "ownerReferences")) == "uid"
    assert merge_key_for("ValidatingWebhookConfiguration", ("webhooks",)) == "name"
    assert merge_key_for("ClusterRole", ("rules",)) is None
    assert merge_key_for("Widget", ("spec", "containers")) is None
    assert (is_builtin_kind("Secret"), is_builtin_kind("Widget")) == (True, False)
