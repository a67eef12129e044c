"""Label and field selectors: grammar, matching, validation messages, supported field labels."""

from __future__ import annotations

from typing import Any

import pytest

from meshbook.sandbox.apiserver.selectors import (
    FieldSelector,
    Requirement,
    SelectorError,
    label_selector_from_dict,
    parse_field_selector,
    parse_label_selector,
)


def _matching(selector: str, *label_sets: dict[str, str]) -> list[bool]:
    parsed = parse_label_selector(selector)
    return [parsed.matches(labels) for labels in label_sets]


WEB, DB, NONE = {"app": "web"}, {"app": "db"}, {}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", [True, False, False]),
        ("app==web", [True, False, False]),
        ("app!=web", [False, True, True]),
        ("app in (web, api)", [True, False, False]),
        ("app notin (web,api)", [False, True, True]),
        ("app", [True, True, False]),
        ("!app", [False, False, True]),
    ],
)
def test_each_operator(selector: str, expected: list[bool]) -> None:
    assert _matching(selector, WEB, DB, NONE) == expected


def test_greater_and_less_than_compare_integers() -> None:
    assert _matching("gen>3", {"gen": "5"}, {"gen": "3"}, {"gen": "x"}, {}) == [True, False, False, False]
    assert _matching("gen<3", {"gen": "-1"}, {"gen": "3"}) == [True, False]


def test_requirements_combine_and_print_sorted_by_key() -> None:
    selector = parse_label_selector("  tier in (front) ,app = web,!legacy ")
    assert selector.requirements == (
        Requirement("app", "=", ("web",)),
        Requirement("legacy", "!", ()),
        Requirement("tier", "in", ("front",)),
    )
    assert str(selector) == "app=web,!legacy,tier in (front)"
    assert selector.matches({"app": "web", "tier": "front"})
    assert not selector.matches({"app": "web", "tier": "front", "legacy": "yes"})
    assert not selector.matches({"app": "web", "tier": "back"})


def test_empty_selector_matches_everything() -> None:
    assert parse_label_selector("").empty()
    assert parse_label_selector(" \t").matches({"any": "thing"})


def test_keywords_and_empty_values_in_value_position() -> None:
    assert parse_label_selector("in in (in,notin)").requirements == (Requirement("in", "in", ("in", "notin")),)
    assert _matching("k in ()", {"k": ""}, {"k": "x"}, {}) == [True, False, False]
    assert _matching("k=", {"k": ""}, {"k": "x"}) == [True, False]
    assert _matching("k notin (a,)", {}, {"k": ""}, {"k": "b"}) == [True, False, True]
    assert parse_label_selector("k in (a,,b)").requirements == (Requirement("k", "in", ("", "a", "b")),)


NAME_PART = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end"


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        ("a=b,", "found '', expected: identifier after ','"),
        (",a", "found ',', expected: !, identifier, or 'end of string'"),
        ("a=b=c", "found '=', expected: ',' or 'end of string'"),
        ("!a=b", "found '=', expected: ',' or 'end of string'"),
        ("a in a", "unable to parse requirement: found 'a' expected: '('"),
        ("a in (x y)", "unable to parse requirement: found 'y', expected: ',' or ')'"),
        ("a in (", "unable to parse requirement: found '', expected: ',', ')' or identifier"),
        ("a=(b", "unable to parse requirement: found '(', expected: identifier"),
        (
            "gen>x",
            """unable to parse requirement: values[0]: Invalid value: "x": """
            "for 'Gt', 'Lt' operators, the value must be an integer",
        ),
        ("-a=b", f'unable to parse requirement: Invalid value: "-a": {NAME_PART}'),
        ("x.io/=b", 'unable to parse requirement: Invalid value: "x.io/": name part must be non-empty; '),
        ("X_Y/a=b", 'unable to parse requirement: Invalid value: "X_Y/a": prefix part a lowercase RFC 1123'),
        ("a=b-", 'unable to parse requirement: values[0][a]: Invalid value: "b-": a valid label must be'),
        (
            "a=" + "v" * 64,
            'unable to parse requirement: values[0][a]: Invalid value: "' + "v" * 64 + '": must be no',
        ),
    ],
)
def test_malformed_label_selectors(selector: str, message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_label_selector(selector)
    assert str(caught.value).startswith(message)


def test_label_selector_object_with_every_operator() -> None:
    selector = label_selector_from_dict(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "edge"]},
                {"key": "track", "operator": "NotIn", "values": ["canary"]},
                {"key": "team", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist", "values": []},
            ],
        }
    )
    assert str(selector) == "app=web,!legacy,team,tier in (edge,front),track notin (canary)"
    base = {"app": "web", "tier": "edge", "team": "a"}
    assert selector.matches(base)
    assert selector.matches({**base, "track": "stable"})
    assert not selector.matches({**base, "track": "canary"})
    assert not selector.matches({**base, "legacy": "1"})
    assert not selector.matches({"app": "web", "tier": "edge"})


def test_null_selector_matches_nothing_and_empty_selector_everything() -> None:
    assert [label_selector_from_dict(None).matches(labels) for labels in (NONE, WEB)] == [False, False]
    assert label_selector_from_dict({}).matches(WEB)
    assert label_selector_from_dict({"matchLabels": {}, "matchExpressions": []}).empty()


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
            "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty",
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
            'values: Invalid value: []string{"x"}: values set must be empty for exists and does not exist',
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Equals"}]},
            '"Equals" is not a valid label selector operator',
        ),
        ({"matchLabels": {"-bad": "x"}}, f'key: Invalid value: "-bad": {NAME_PART}'),
        ({"matchLabels": {"a": 1}}, "matchLabels.a: Invalid value: 1: must be a string"),
    ],
)
def test_invalid_label_selector_objects(selector: dict[str, Any], message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        label_selector_from_dict(selector)
    assert str(caught.value).startswith(message)


POD: dict[str, Any] = {
    "kind": "Pod",
    "metadata": {"name": "p", "namespace": "ns"},
    "spec": {"nodeName": "n1", "restartPolicy": "Always"},
    "status": {"phase": "Pending", "podIP": "10.0.0.5"},
}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("spec.nodeName=n1,status.phase!=Running", True),
        ("spec.nodeName==n1,status.phase=Running", False),
        ("metadata.name=p,metadata.namespace=ns", True),
        ("metadata.namespace!=ns", False),
        ("spec.hostNetwork=false", True),  # unset booleans read as false
        ("spec.host=n1", True),  # the old alias of spec.nodeName
        ("status.podIP=10.0.0.5,spec.restartPolicy=Always", True),
        ("status.nominatedNodeName=", True),
    ],
)
def test_pod_field_selectors(selector: str, matches: bool) -> None:
    parsed = parse_field_selector(selector)
    parsed.validate_for_kind("Pod")
    assert parsed.matches(POD) is matches


def test_event_field_selectors_including_source_fallback() -> None:
    event = {
        "kind": "Event",
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "ns", "uid": "u1"},
        "reason": "BackOff",
        "type": "Warning",
        "source": {"component": "kubelet"},
    }
    selector = parse_field_selector("involvedObject.kind=Pod,involvedObject.name=p,type=Warning,source=kubelet")
    selector.validate_for_kind("Event")
    assert selector.matches(event)
    reported = {**event, "source": {}, "reportingComponent": "my-controller"}
    assert parse_field_selector("source=my-controller,reportingComponent=my-controller").matches(reported)
    assert not parse_field_selector("reason!=BackOff").matches(event)


def test_secret_and_other_kind_field_selectors() -> None:
    secret = {"kind": "Secret", "type": "kubernetes.io/tls", "metadata": {"name": "s"}}
    assert parse_field_selector("type=kubernetes.io/tls").matches(secret)
    assert not parse_field_selector("type!=kubernetes.io/tls").matches(secret)
    assert parse_field_selector("status.replicas=0").matches({"status": {}}, kind="ReplicaSet")
    assert parse_field_selector("status.successful=2").matches({"status": {"successful": 2}}, kind="Job")
    assert parse_field_selector("spec.unschedulable=true").matches({"spec": {"unschedulable": True}}, kind="Node")


@pytest.mark.parametrize(
    ("selector", "kind", "label"),
    [
        ("spec.containers=x", "Pod", "spec.containers"),
        ("status.phase=Active,type=Opaque", "ConfigMap", "status.phase"),
        ("metadata.namespace=default", "Node", "metadata.namespace"),
        ("involvedObject.name=x", "Widget", "involvedObject.name"),
    ],
)
def test_unsupported_field_labels(selector: str, kind: str, label: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_field_selector(selector).validate_for_kind(kind)
    assert str(caught.value) == f"field label not supported: {label}"


def test_field_selector_escapes_and_round_trip() -> None:
    selector = parse_field_selector(r"metadata.name=a\,b\=c\\d")
    assert selector.requirements[0].value == r"a,b=c\d"
    assert str(selector) == r"metadata.name=a\,b\=c\\d"
    assert selector.matches({"metadata": {"name": r"a,b=c\d"}})
    assert parse_field_selector("") == FieldSelector()


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("status.phase", "invalid selector: 'status.phase'; can't understand 'status.phase'"),
        ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
        ("a=b=c", "invalid field selector: unescaped character in value: ="),
        (r"a=b\x", r"invalid field selector: invalid escape sequence: \x"),
        ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
    ],
)
def test_malformed_field_selectors(selector: str, message: str) -> None:
    with pytest.raises(SelectorError) as caught:
        parse_field_selector(selector)
    assert str(caught.value) == message
