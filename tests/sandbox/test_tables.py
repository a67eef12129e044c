"""Server-side tables: ages, pod READY/STATUS/RESTARTS, CRD printer columns and the Table envelope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from meshbook.sandbox.http.tables.render import find_results, go_text, human_duration, to_table

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def ts(**ago: float) -> str:
    return (NOW - timedelta(**ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, **ago: float) -> dict[str, Any]:
    return {"name": name, "namespace": "vault", "creationTimestamp": ts(**(ago or {"hours": 1}))}


def header(table: dict[str, Any]) -> str:
    """Columns as `Name`, `Name:type` unless a string, `(...)` around priority-1 (wide) columns."""
    names = []
    for c in table["columnDefinitions"]:
        name = c["name"] if c["type"] == "string" else f"{c['name']}:{c['type']}"
        names.append(f"({name})" if c["priority"] else name)
    return "|".join(names)


def cells(kind: str, obj: dict[str, Any]) -> list[Any]:
    row: list[Any] = to_table(kind, [obj], now=NOW)["rows"][0]["cells"]
    return row


# --- ages --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=-3), "<invalid>"),
        (timedelta(seconds=-2), "<invalid>"),
        (timedelta(seconds=-1.5), "0s"),
        (timedelta(0), "0s"),
        (timedelta(seconds=59), "59s"),
        (timedelta(seconds=119.9), "119s"),
        (timedelta(minutes=2), "2m"),
        (timedelta(minutes=2, seconds=3), "2m3s"),
        (timedelta(minutes=9, seconds=59), "9m59s"),
        (timedelta(minutes=10), "10m"),
        (timedelta(minutes=10, seconds=30), "10m"),
        (timedelta(minutes=179, seconds=59), "179m"),
        (timedelta(hours=3), "3h"),
        (timedelta(hours=3, minutes=5), "3h5m"),
        (timedelta(hours=7, minutes=59), "7h59m"),
        (timedelta(hours=8, minutes=30), "8h"),
        (timedelta(hours=22), "22h"),
        (timedelta(hours=47, minutes=59), "47h"),
        (timedelta(days=2), "2d"),
        (timedelta(days=2, hours=3), "2d3h"),
        (timedelta(days=7, hours=23), "7d23h"),
        (timedelta(days=8, hours=5), "8d"),
        (timedelta(days=729), "729d"),
        (timedelta(days=730), "2y"),
        (timedelta(days=735), "2y5d"),
        (timedelta(days=365 * 8 - 1), "7y364d"),
        (timedelta(days=365 * 8), "8y"),
        (timedelta(days=365 * 20 + 100), "20y"),
    ],
)
def test_human_duration(delta: timedelta, text: str) -> None:
    assert human_duration(delta) == text


# --- pods --------------------------------------------------------------------------------------------

RUNNING: dict[str, Any] = {"running": {"startedAt": ts(minutes=50)}}


def pod(phase: str, init: list[Any] | None = None, main: list[Any] | None = None, inits: int = 0) -> dict[str, Any]:
    spec = {"containers": [{"name": "app", "image": "busybox"}]}
    if inits:
        spec["initContainers"] = [{"name": f"init{i}", "image": "busybox"} for i in range(inits)]
    status = {"phase": phase, "initContainerStatuses": init or [], "containerStatuses": main or []}
    return {"metadata": meta("p"), "spec": spec, "status": status}


def waiting(reason: str, name: str = "app") -> dict[str, Any]:
    return {"name": name, "state": {"waiting": {"reason": reason}}, "ready": False, "restartCount": 0}


def crashing(name: str, restarts: int, seconds: float) -> dict[str, Any]:
    last = {"terminated": {"exitCode": 1, "finishedAt": ts(seconds=seconds)}}
    return waiting("CrashLoopBackOff", name) | {"restartCount": restarts, "lastState": last}


def terminated(name: str, code: int, reason: str = "") -> dict[str, Any]:
    state = {"exitCode": code} | ({"reason": reason} if reason else {})
    return {"name": name, "state": {"terminated": state}, "ready": False, "restartCount": 0}


DONE = terminated("init0", 0, "Completed")
APP = {"name": "app", "state": RUNNING, "ready": True, "restartCount": 0}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (pod("Pending"), "0/1|Pending|0"),
        (pod("Pending", [{"name": "init0", "state": RUNNING}], inits=2), "0/1|Init:0/2|0"),
        (pod("Pending", [DONE, {"name": "init1", "state": RUNNING}], inits=2), "0/1|Init:1/2|0"),
        (pod("Pending", [terminated("init0", 1, "Error")], inits=1), "0/1|Init:Error|0"),
        (pod("Pending", [terminated("init0", 2)], inits=1), "0/1|Init:ExitCode:2|0"),
        (pod("Pending", [crashing("init0", 3, 120)], inits=1), "0/1|Init:CrashLoopBackOff|3 (2m ago)"),
        (pod("Pending", [DONE], [waiting("PodInitializing")], inits=1), "0/1|PodInitializing|0"),
        (pod("Pending", main=[waiting("ContainerCreating")]), "0/1|ContainerCreating|0"),
        (pod("Running", main=[crashing("app", 4, 90)]), "0/1|CrashLoopBackOff|4 (90s ago)"),
        (pod("Succeeded", main=[terminated("app", 0, "Completed")]), "0/1|Completed|0"),
        (pod("Failed", main=[terminated("app", 1, "Error")]), "0/1|Error|0"),
        (pod("Failed", main=[terminated("app", 137)]), "0/1|ExitCode:137|0"),
        (pod("Running", main=[APP]), "1/1|Running|0"),
        (pod("Running", main=[APP, terminated("second", 0, "Completed")]), "1/1|NotReady|0"),
    ],
)
def test_pod_status(obj: dict[str, Any], expected: str) -> None:
    assert "|".join(cells("Pod", obj)[1:4]) == expected


def test_pod_terminating() -> None:
    running = pod("Running", main=[APP])
    running["metadata"]["deletionTimestamp"] = ts(seconds=5)
    assert cells("Pod", running)[2] == "Terminating"
    done = pod("Succeeded", main=[terminated("app", 0, "Completed")])
    done["metadata"]["deletionTimestamp"] = ts(seconds=5)
    assert cells("Pod", done)[2] == "Completed"


def test_pod_columns_and_wide_cells() -> None:
    obj = pod("Running", main=[APP])
    obj["metadata"]["creationTimestamp"] = ts(minutes=5)
    obj["spec"] |= {"nodeName": "sandbox", "readinessGates": [{"conditionType": "example.com/ready"}]}
    obj["status"] |= {
        "podIPs": [{"ip": "10.244.0.7"}],
        "conditions": [{"type": "example.com/ready", "status": "True"}],
    }
    table = to_table("Pod", [obj], now=NOW)
    assert header(table) == "Name|Ready|Status|Restarts|Age|(IP)|(Node)|(Nominated Node)|(Readiness Gates)"
    assert table["rows"][0]["cells"] == [
        "p",
        "1/1",
        "Running",
        "0",
        "5m",
        "10.244.0.7",
        "sandbox",
        "<none>",
        "1/1",
    ]
    assert cells("Pod", pod("Pending"))[5:] == ["<none>", "<none>", "<none>", "<none>"]


def _sidecar_pod(started: bool) -> dict[str, Any]:
    proxy = {"name": "proxy", "state": RUNNING, "ready": started, "started": started, "restartCount": 2}
    proxy["lastState"] = {"terminated": {"exitCode": 1, "finishedAt": ts(minutes=5)}}
    app = APP | {
        "restartCount": 1,
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": ts(minutes=10)}},
    }
    status = {
        "phase": "Running" if started else "Pending",
        "conditions": [{"type": "Initialized", "status": "True" if started else "False"}],
        "initContainerStatuses": [terminated("setup", 0, "Completed"), proxy],
        "containerStatuses": [app] if started else [],
    }
    init = [{"name": "setup"}, {"name": "proxy", "restartPolicy": "Always"}]
    return {
        "metadata": meta("web"),
        "spec": {"initContainers": init, "containers": [{"name": "app"}]},
        "status": status,
    }


def test_ready_counts_native_sidecars() -> None:
    assert cells("Pod", _sidecar_pod(started=True))[1:4] == ["2/2", "Running", "3 (5m ago)"]
    assert cells("Pod", _sidecar_pod(started=False))[1:4] == ["0/2", "Init:1/2", "2 (5m ago)"]


def test_pod_row_conditions() -> None:
    table = to_table("Pod", [pod("Succeeded"), pod("Running")], now=NOW)
    completed = {"type": "Completed", "status": "True", "reason": "Succeeded"}
    assert table["rows"][0]["conditions"] == [completed | {"message": "The pod has completed successfully."}]
    assert "conditions" not in table["rows"][1]


# --- custom resources, unknown kinds, the Table envelope ---------------------------------------------

AGE_DOC = "Custom resource definition column (in JSONPath format): .metadata.creationTimestamp"
PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "Size", "type": "integer", "jsonPath": ".spec.size", "description": "Vault pods"},
    {"name": "Ratio", "type": "number", "jsonPath": ".spec.ratio", "priority": 1},
    {"name": "Paused", "type": "boolean", "jsonPath": ".spec.paused"},
    {"name": "Image", "type": "string", "jsonPath": ".spec.image"},
    {"name": "Labels", "type": "string", "jsonPath": ".metadata.labels"},
    {"name": "Seen", "type": "date", "jsonPath": ".status.lastSeen"},
    {"name": "Missing", "type": "string", "jsonPath": ".status.nothing"},
    {"name": "Wrong", "type": "integer", "jsonPath": ".spec.image"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def test_crd_printer_columns() -> None:
    conditions = [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "False"}]
    vault = {
        "apiVersion": "vault.banzaicloud.com/v1alpha1",
        "kind": "Vault",
        "metadata": meta("vault", days=2, hours=3) | {"labels": {"b": "2", "a": "<1>"}},
        "spec": {"size": 3.0, "ratio": 2, "paused": False, "image": "hashicorp/vault:1.16"},
        "status": {"lastSeen": "yesterday", "conditions": conditions},
    }
    table = to_table("Vault.vault.banzaicloud.com", [vault], now=NOW, printer_columns=PRINTER_COLUMNS)
    assert header(table) == (
        "Name|Ready|Size:integer|(Ratio:number)|Paused:boolean|Image|Labels|Seen:date|Missing|Wrong:integer|Age:date"
    )
    descriptions = [c["description"] for c in table["columnDefinitions"]]
    assert descriptions[1:3] == [
        "Custom resource definition column (in JSONPath format): " + PRINTER_COLUMNS[0]["jsonPath"],
        "Vault pods",
    ]
    labels = '{"a":"\\u003c1\\u003e","b":"2"}'
    assert table["rows"][0]["cells"] == [
        *("vault", "False", 3, 2.0, False, "hashicorp/vault:1.16", labels, "<invalid>", None, None, "2d3h")
    ]


def test_crd_without_printer_columns_and_unknown_kinds() -> None:
    obj = {"metadata": meta("x", minutes=2, seconds=3)}
    for table in (
        to_table("Widget.example.com", [obj], now=NOW, printer_columns=[]),
        to_table("Lease", [obj], now=NOW),
    ):
        assert header(table) == "Name|Age:date"
        assert table["columnDefinitions"][1]["description"] == AGE_DOC
        assert table["rows"][0]["cells"] == ["x", "2m3s"]


def test_include_object() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("cm"), "data": {"k": "v"}}
    table = to_table("ConfigMap", [obj], now=NOW)
    assert (table["kind"], table["apiVersion"], table["metadata"]) == ("Table", "meta.k8s.io/v1", {})
    partial = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta("cm")}
    assert table["rows"][0]["object"] == partial
    assert to_table("ConfigMap", [obj], now=NOW, include_object="Object")["rows"][0]["object"] == obj
    assert to_table("ConfigMap", [obj], now=NOW, include_object="None")["rows"][0]["object"] is None
    assert to_table("ConfigMap", [], now=NOW)["rows"] == []
    with pytest.raises(ValueError, match='Unsupported value: "Everything"'):
        to_table("ConfigMap", [obj], now=NOW, include_object="Everything")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".spec.containers[0].image", ["a:1"]),
        (".spec.containers[-1].name", ["b"]),
        (".spec.containers[*].name", ["a", "b"]),
        ("{.metadata['name']}", ["obj"]),
        (".metadata.labels.app\\.kubernetes\\.io/name", ["vault"]),
        ('.spec.containers[?(@.name=="b")].image', ["b:2"]),
        (".spec.ports[?(@.port==8201)].name", ["cluster"]),
        (".spec.ports[?(@.port>8200)].port", [8201]),
        (".spec.containers[?(@.ready)].name", ["b"]),
        (".spec.containers[?(@.ready==true)].name", ["b"]),
        (".spec.nothing.deeper", []),
        (".spec.containers[5]", []),
        ("..name", []),
    ],
)
def test_jsonpath(path: str, expected: list[Any]) -> None:
    obj = {
        "metadata": {"name": "obj", "labels": {"app.kubernetes.io/name": "vault"}},
        "spec": {
            "containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2", "ready": True}],
            "ports": [{"name": "api", "port": 8200}, {"name": "cluster", "port": 8201}],
        },
    }
    assert find_results(path, obj) == expected


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3, "3"),
        (1.5, "1.5"),
        (3.0, "3"),
        (1e6, "1e+06"),
        (123456.0, "123456"),
        (0.0001, "0.0001"),
        (1.5e-5, "1.5e-05"),
        (-2.5e7, "-2.5e+07"),
        (True, "true"),
        (None, None),
        (["x", 1], '["x",1]'),
        ("text", "text"),
    ],
)
def test_go_text(value: Any, text: str | None) -> None:
    assert go_text(value) == text
