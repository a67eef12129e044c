"""The validation rules without a server: names, metadata, immutable fields, the schema walk, body decoding."""

from __future__ import annotations

import pytest

from meshbook.bankvaults.vault_crd_schema import VAULT_SCHEMA
from meshbook.mesh.istio_crd_schemas import open_api_v3_schema
from meshbook.sandbox.apiserver.validation.fields import FieldValidation, decode, request_warnings
from meshbook.sandbox.apiserver.validation.immutable import immutable_errors
from meshbook.sandbox.apiserver.validation.metadata import object_meta_errors
from meshbook.sandbox.apiserver.validation.names import DNS1123_SUBDOMAIN_ERROR, name_errors
from meshbook.sandbox.apiserver.validation.structural import SchemaWalk
from meshbook.sandbox.http.wire import BodyDecodeError, decode_json, decode_yaml, duplicate_fields, status_body
from meshbook.sandbox.storage.resources import ResourceRegistry, ResourceType
from meshbook.sandbox.storage.store import StoreError

REGISTRY = ResourceRegistry()


def _rt(group: str, plural: str) -> ResourceType:
    rt = REGISTRY.lookup(group, "v1", plural)
    assert rt is not None
    return rt


@pytest.mark.parametrize(
    ("kind", "name", "expected"),
    [
        ("Service", "1svc", ["a DNS-1035 label"]),
        ("Namespace", "a" * 64, ["must be no more than 63 characters"]),
        ("Namespace", "a.b", ["a lowercase RFC 1123 label"]),
        ("ConfigMap", "Upper", ["a lowercase RFC 1123 subdomain"]),
        ("ConfigMap", "a" * 254, ["must be no more than 253 characters"]),
        ("Role", "a/b", ["may not contain '/'"]),
        ("Role", "..", ["may not be '..'"]),
    ],
)
def test_names_refused_per_kind(kind: str, name: str, expected: list[str]) -> None:
    errors = name_errors(kind, name)
    assert [e[: len(x)] for e, x in zip(errors, expected, strict=True)] == expected


@pytest.mark.parametrize(
    ("kind", "name"), [("Service", "svc-1"), ("Namespace", "a" * 63), ("ConfigMap", "a.b-c"), ("Role", "system:x")]
)
def test_names_accepted_per_kind(kind: str, name: str) -> None:
    assert name_errors(kind, name) == []


def test_subdomain_message_is_apimachinerys() -> None:
    assert DNS1123_SUBDOMAIN_ERROR == (
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
        "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    )


def test_label_keys_and_values() -> None:
    bad = object_meta_errors("ConfigMap", {"name": "x", "labels": {"a/b/c": "v", "/x": "v", "ok": "-bad"}})
    texts = [str(e) for e in bad]
    assert texts[0].startswith('metadata.labels: Invalid value: "a/b/c": a qualified name must consist')
    assert texts[1] == 'metadata.labels: Invalid value: "/x": prefix part must be non-empty'
    assert texts[2].startswith('metadata.labels: Invalid value: "-bad": a valid label must be an empty string')
    assert object_meta_errors("ConfigMap", {"name": "x", "labels": {"example.com/a": "", "b": "c_d.e"}}) == []


def test_immutable_fields() -> None:
    old = {"spec": {"selector": {"matchLabels": {"app": "a"}}, "replicas": 1}}
    new = {"spec": {"selector": {"matchLabels": {"app": "b"}}, "replicas": 2}}
    [error] = immutable_errors("Deployment", old, new)
    assert str(error) == (
        'spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"b"}, '
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
    )
    assert immutable_errors("Deployment", old, {"spec": {**old["spec"], "replicas": 5}}) == []
    assert immutable_errors("ConfigMap", {"data": {"a": "1"}}, {"data": {"a": "2"}}) == []
    sealed = {"immutable": True, "data": {"a": "1"}}
    assert [str(e) for e in immutable_errors("ConfigMap", sealed, {"data": {"a": "2"}})] == [
        "immutable: Forbidden: field is immutable when `immutable` is set",
        "data: Forbidden: field is immutable when `immutable` is set",
    ]
    sts_old = {"spec": {"serviceName": "a", "replicas": 1}}
    assert [
        e.field for e in immutable_errors("StatefulSet", sts_old, {"spec": {"serviceName": "b", "replicas": 1}})
    ] == ["spec"]
    assert immutable_errors("StatefulSet", sts_old, {"spec": {"serviceName": "a", "replicas": 3}}) == []


def test_schema_walk_prunes_and_checks_crd_values() -> None:
    walk = SchemaWalk(builtin=False)
    spec = {"mtls": {"mode": "STRIKT", "extra": 1}, "portLevelMtls": {"8080": {"mode": "DISABLE", "x": 2}}}
    pruned = walk.walk({"spec": spec}, open_api_v3_schema("PeerAuthentication"))
    assert pruned == {"spec": {"mtls": {"mode": "STRIKT"}, "portLevelMtls": {"8080": {"mode": "DISABLE"}}}}
    assert walk.unknown == ["spec.mtls.extra", "spec.portLevelMtls[8080].x"]
    assert [str(e) for e in walk.errors] == [
        'spec.mtls.mode: Unsupported value: "STRIKT": supported values: "UNSET", "DISABLE", "PERMISSIVE", "STRICT"'
    ]


def test_schema_walk_types_and_preserved_fields() -> None:
    walk = SchemaWalk(builtin=False)
    body = {"spec": {"size": 1.5, "istioEnabled": "yes", "config": {"any": {"thing": 1}}}}
    pruned = walk.walk(body, VAULT_SCHEMA)
    assert pruned["spec"]["config"] == {"any": {"thing": 1}}
    assert [str(e) for e in walk.errors] == [
        'spec.size: Invalid value: "number": spec.size in body must be of type integer: "number"',
        'spec.istioEnabled: Invalid value: "string": spec.istioEnabled in body must be of type boolean: "string"',
    ]
    assert SchemaWalk(builtin=False).walk({"spec": {"size": 3.0}}, VAULT_SCHEMA) == {"spec": {"size": 3.0}}


def test_string_formats_of_crds() -> None:
    schema = {
        "type": "object",
        "properties": {
            "at": {"type": "string", "format": "date-time"},
            "raw": {"type": "string", "format": "byte"},
            "ip": {"type": "string", "format": "ipv4"},
            "free": {"type": "string", "format": "hostname-ish"},
        },
    }
    walk = SchemaWalk(builtin=False)
    walk.walk({"at": "yesterday", "raw": "!!", "ip": "1.2.3.4", "free": "x"}, schema)
    assert [str(e) for e in walk.errors] == [
        'at: Invalid value: "yesterday": at in body must be of type date-time: "yesterday"',
        'raw: Invalid value: "!!": raw in body must be of type byte: "!!"',
    ]
    good = SchemaWalk(builtin=False)
    good.walk({"at": "2026-01-02T03:04:05Z", "raw": "aGk=", "ip": "10.0.0.1"}, schema)
    assert good.errors == []


def test_required_fields_of_crds() -> None:
    walk = SchemaWalk(builtin=False)
    walk.walk({"spec": {"jwtRules": [{"audiences": ["a"]}]}}, open_api_v3_schema("RequestAuthentication"))
    assert [str(e) for e in walk.errors] == ["spec.jwtRules[0].issuer: Required value"]


def test_decode_of_built_in_kinds() -> None:
    pods = _rt("", "pods")
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}
    with pytest.raises(StoreError) as caught:
        decode(pods, {**body, "spec": {"containers": {"name": "c"}}}, FieldValidation.IGNORE, "create")
    assert caught.value.message == (
        'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal object into Go struct field '
        "PodSpec.spec.containers of type []v1.Container"
    )
    warnings: list[str] = []
    request_warnings.set(warnings)
    nested = {**body, "spec": {"containers": [{"name": "c", "imagee": "x"}]}}
    assert decode(pods, nested, FieldValidation.WARN, "create")["spec"] == {"containers": [{"name": "c"}]}
    assert warnings == ['unknown field "spec.containers[0].imagee"']
    with pytest.raises(StoreError) as caught:
        decode(pods, nested, FieldValidation.STRICT, "patch")
    assert (caught.value.code, caught.value.message) == (
        400,
        'strict decoding error: unknown field "spec.containers[0].imagee"',
    )
    # Fields an in-process writer stored are not the patch's fault.
    assert decode(pods, nested, FieldValidation.STRICT, "patch", tolerated=nested)["spec"]["containers"] == [
        {"name": "c"}
    ]


def test_json_refuses_what_go_refuses() -> None:
    with pytest.raises(BodyDecodeError, match="invalid character 'N' looking for beginning of value"):
        decode_json(b'{"a": NaN}')
    with pytest.raises(BodyDecodeError, match="exceeded max depth"):
        decode_json(b"[" * 20000 + b"]" * 20000)
    assert decode_json(b'{"a": 1.5}') == {"a": 1.5}


def test_duplicate_fields_are_found_with_their_paths() -> None:
    raw = b'{"a":{"b":1,"b":2},"c":[{"d":1,"d":1}],"e":1,"e":2}'
    assert sorted(duplicate_fields(raw)) == ["a.b", "c[0].d", "e"]
    assert duplicate_fields(b'{"a":{"b":1},"b":1}') == []


def test_yaml_like_sigs_k8s_io_yaml() -> None:
    assert decode_yaml(b"a: 2024-01-01\n8080: x\nb: &x [1]\nc: *x\n") == {
        "a": "2024-01-01",
        "8080": "x",
        "b": [1],
        "c": [1],
    }
    with pytest.raises(BodyDecodeError, match="json: unsupported value: NaN"):
        decode_yaml(b"a: .nan\n")
    bomb = ["a: &a [" + ",".join(["x"] * 10) + "]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        bomb.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]")
    with pytest.raises(BodyDecodeError, match="excessive aliasing"):
        decode_yaml("\n".join(bomb).encode())


def test_status_body_order_and_omissions() -> None:
    body = status_body(404, "NotFound", 'pods "x" not found', {"name": "x", "group": "", "kind": "pods"})
    assert list(body) == ["kind", "apiVersion", "metadata", "status", "message", "reason", "details", "code"]
    assert body["details"] == {"name": "x", "kind": "pods"}
    assert list(status_body(0, "", "", {"name": "x", "uid": "u"})) == [
        "kind",
        "apiVersion",
        "metadata",
        "status",
        "details",
    ]
