"""The protobuf decoder against real kubectl 1.32/1.33 request bodies and hand-built edge cases.

The fixtures were captured from kubectl on this machine: `*-1.33.bin` (and `create-namespace-1.32.bin`) are
protobuf bodies, `*-1.31.json` the JSON bodies kubectl 1.31 sends for the very same command line. Decoding
must give exactly that JSON, so the sandbox cannot tell the two clients apart.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from meshbook.sandbox.http.protobuf.decode import (
    MAGIC,
    ProtobufError,
    UnsupportedKindError,
    _compile,
    decode_object,
    is_protobuf,
)

FIXTURES = Path(__file__).parent / "fixtures" / "protobuf"
KUBECTL_133 = Path("/usr/lib/google-cloud-sdk/bin/kubectl.1.33")

# Fixture `create-NAME-1.33.bin` -> what followed `kubectl create` ({bin}: a file of b"\x00\x01\x02\xff").
COMMANDS: dict[str, str] = {
    "namespace": "namespace foo",
    "serviceaccount": "serviceaccount sa1 -n ns1",
    "secret-generic": "secret generic s1 --from-literal=user=admin --from-literal=pw=s3cr3t -n ns1",
    "secret-docker-registry": "secret docker-registry d1 --docker-server=reg.example.com --docker-username=u "
    "--docker-password=p --docker-email=e@example.com",
    "configmap": "configmap cm1 --from-literal=k=v --from-literal=k2=v2 --from-file=bin={bin} --save-config",
    "deployment": "deployment web --image=nginx:1.25",
    "deployment-full": "deployment web2 --image=nginx --replicas=3 --port=8080 -- sh -c 'echo hi'",
    "token": "token sa1 --audience=vault --duration=10m --bound-object-kind=Secret --bound-object-name=s1",
    "token-default": "token sa1",
    "job": "job j1 --image=busybox -- sh -c 'echo hi'",
    "service-clusterip": "service clusterip web --tcp=80:8080",
    "service-headless": "service clusterip hl --clusterip=None",
    "service-nodeport": "service nodeport np --tcp=80:8080 --node-port=30080",
    "ingress": "ingress web --class=nginx --rule=foo.example/bar=svc1:8080,tls=my-cert --default-backend=def:80",
}


def _fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# --- a tiny encoder for hand-built bodies -------------------------------------------------------------


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative numbers as proto's 10-byte two's complement
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes([*out, value])


def _f(number: int, value: int | str | bytes) -> bytes:
    """One field: ints as varints, str/bytes (and nested messages) length-delimited."""
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    payload = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _body(api_version: str, kind: str, raw: bytes) -> bytes:
    return MAGIC + _f(1, _f(1, api_version) + _f(2, kind)) + _f(2, raw) + _f(3, "") + _f(4, "")


# --- captured fixtures ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_fixture_decodes_to_the_json_kubectl_131_sends(name: str) -> None:
    expected = json.loads(_fixture(f"create-{name}-1.31.json"))
    assert decode_object(_fixture(f"create-{name}-1.33.bin")) == expected


def test_kubectl_132_sends_the_same_bytes_as_133() -> None:
    assert _fixture("create-namespace-1.32.bin") == _fixture("create-namespace-1.33.bin")


def test_namespace() -> None:
    assert decode_object(_fixture("create-namespace-1.33.bin")) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "foo", "creationTimestamp": None},
        "spec": {},
        "status": {},
    }


def test_secret_data_is_base64_like_json() -> None:
    assert decode_object(_fixture("create-secret-generic-1.33.bin")) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s1", "namespace": "ns1", "creationTimestamp": None},
        "data": {"pw": "czNjcjN0", "user": "YWRtaW4="},
    }


def test_configmap_binary_data_and_annotations() -> None:
    obj = decode_object(_fixture("create-configmap-1.33.bin"))
    assert obj["data"] == {"k": "v", "k2": "v2"}
    assert obj["binaryData"] == {"bin": "AAEC/w=="}
    last_applied = json.loads(obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"])
    assert last_applied["metadata"] == {"name": "cm1", "creationTimestamp": None}


def test_deployment_with_replicas_port_and_command() -> None:
    assert decode_object(_fixture("create-deployment-full-1.33.bin")) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web2", "creationTimestamp": None, "labels": {"app": "web2"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web2"}},
            "template": {
                "metadata": {"creationTimestamp": None, "labels": {"app": "web2"}},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": "nginx",
                            "command": ["sh", "-c", "echo hi"],
                            "ports": [{"containerPort": 8080}],
                            "resources": {},
                        }
                    ]
                },
            },
            "strategy": {},
        },
        "status": {},
    }


def test_ingress_rule_value_is_inlined_and_path_type_kept() -> None:
    rules = decode_object(_fixture("create-ingress-1.33.bin"))["spec"]["rules"]
    assert rules == [
        {
            "host": "foo.example",
            "http": {
                "paths": [
                    {
                        "path": "/bar",
                        "pathType": "Exact",
                        "backend": {"service": {"name": "svc1", "port": {"number": 8080}}},
                    }
                ]
            },
        }
    ]


def test_token_request_keeps_fields_go_never_omits() -> None:
    meta = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "metadata": {"creationTimestamp": None},
    }
    status = {"token": "", "expirationTimestamp": None}
    assert decode_object(_fixture("create-token-default-1.33.bin")) == {
        **meta,
        "spec": {"audiences": None, "expirationSeconds": None, "boundObjectRef": None},
        "status": status,
    }
    assert decode_object(_fixture("create-token-1.33.bin")) == {
        **meta,
        "spec": {
            "audiences": ["vault"],
            "expirationSeconds": 600,
            "boundObjectRef": {"kind": "Secret", "apiVersion": "v1", "name": "s1"},
        },
        "status": status,
    }


# --- hand-built bodies: semantics ---------------------------------------------------------------------


def test_metadata_fields_times_and_pointer_zeros() -> None:
    time = _f(1, 1714979289) + _f(2, 999)  # 2024-05-06T07:08:09.000000999Z: nanos are dropped
    meta = (
        _f(2, "web-")
        + _f(3, "ns")
        + _f(8, time)
        + _f(11, _f(1, "a") + _f(2, "1"))
        + _f(12, _f(1, "note") + _f(2, "x"))
        + _f(14, "f1")
        + _f(13, _f(1, "ReplicaSet") + _f(3, "rs") + _f(6, 0))
    )
    pod = _f(2, _f(1, "c") + _f(8, _f(1, _f(1, "cpu") + _f(2, _f(1, "500m"))))) + _f(25, -5)
    rolling = _f(1, _f(1, 0) + _f(2, 1)) + _f(2, _f(1, 1) + _f(3, "25%"))
    spec = _f(1, 0) + _f(3, _f(2, pod)) + _f(4, _f(1, "RollingUpdate") + _f(2, rolling)) + _f(7, 0)
    obj = decode_object(_body("apps/v1", "Deployment", _f(1, meta) + _f(2, spec)))
    assert obj["metadata"] == {
        "generateName": "web-",
        "namespace": "ns",
        "creationTimestamp": "2024-05-06T07:08:09Z",
        "labels": {"a": "1"},
        "annotations": {"note": "x"},
        "ownerReferences": [{"apiVersion": "", "kind": "ReplicaSet", "name": "rs", "uid": "", "controller": False}],
        "finalizers": ["f1"],
    }
    assert obj["spec"]["replicas"] == 0  # a pointer present on the wire survives even when zero
    assert "paused" not in obj["spec"]  # a plain bool false is omitted, as omitempty does
    assert obj["spec"]["selector"] is None  # absent pointer without omitempty
    assert obj["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"},
    }
    assert obj["spec"]["template"]["spec"] == {
        "containers": [{"name": "c", "resources": {"limits": {"cpu": "500m"}}}],
        "priority": -5,
    }
    assert obj["status"] == {}


def test_secret_string_data_type_immutable_and_last_value_wins() -> None:
    raw = _f(3, "first") + _f(1, _f(1, "s")) + _f(4, _f(1, "k") + _f(2, "v")) + _f(3, "Opaque") + _f(5, 0)
    raw += _f(2, _f(1, "e"))  # a map entry without a value: the empty byte string
    assert decode_object(_body("v1", "Secret", raw)) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "creationTimestamp": None},
        "immutable": False,
        "data": {"e": ""},
        "stringData": {"k": "v"},
        "type": "Opaque",
    }


def test_unknown_fields_of_every_wire_type_are_skipped() -> None:
    raw = _f(1, _f(1, "foo")) + _f(2, b"") + _f(3, _f(1, ""))
    extra = _f(99, 7) + _f(98, b"\x01\x02") + _varint(97 << 3 | 1) + bytes(8) + _varint(96 << 3 | 5) + bytes(4)
    expected = decode_object(_fixture("create-namespace-1.33.bin"))
    assert decode_object(_body("v1", "Namespace", raw)) == expected
    assert decode_object(_body("v1", "Namespace", raw + extra)) == expected
    assert decode_object(_body("v1", "Namespace", _f(1, _f(50, "future") + _f(1, "foo")) + extra)) == expected


def test_is_protobuf() -> None:
    assert is_protobuf("application/vnd.kubernetes.protobuf")
    assert is_protobuf("Application/VND.Kubernetes.Protobuf; charset=binary")
    assert not is_protobuf("application/json")
    assert not is_protobuf("application/vnd.kubernetes.protobuf-extra")
    assert not is_protobuf("")


def test_a_schema_typo_fails_at_import_not_on_a_request() -> None:
    with pytest.raises(ValueError, match=r"M\.x: unknown type 'Nope'"):
        _compile({"M": {1: ("x", "[]Nope!")}})


# --- malformed bodies ---------------------------------------------------------------------------------


def test_wrong_magic() -> None:
    body = _fixture("create-namespace-1.33.bin")
    with pytest.raises(ProtobufError, match=r"magic b'k8s\\x00': got b'k8s\\x01'"):
        decode_object(b"k8s\x01" + body[4:])
    with pytest.raises(ProtobufError, match="magic"):
        decode_object(b'{"kind":"Namespace"}')
    with pytest.raises(ProtobufError, match="magic"):
        decode_object(b"")


def test_truncated_envelope() -> None:
    body = _fixture("create-deployment-1.33.bin")
    with pytest.raises(ProtobufError, match=r"^Unknown: field 2 at byte 27 declares 176 bytes, only 175 remain$"):
        decode_object(body[:-5])
    with pytest.raises(ProtobufError, match=r"^Unknown: truncated varint at byte 5$"):
        decode_object(MAGIC + b"\x0a\x80")
    with pytest.raises(ProtobufError, match="must name apiVersion and kind"):
        decode_object(MAGIC)


def test_truncated_object_names_the_path() -> None:
    container = _varint(1 << 3 | 2)  # a name field whose length is missing
    raw = _f(2, _f(3, _f(2, _f(2, container))))
    body = _body("apps/v1", "Deployment", raw)
    where = body.rindex(container)
    with pytest.raises(
        ProtobufError,
        match=rf"^Deployment\.spec\.template\.spec\.containers\[0\]: truncated varint at byte {where + 1}$",
    ):
        decode_object(body)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_f(1, 5), r"Namespace\.metadata: field 1 at byte \d+ has wire type 0, expected 2"),
        (_varint(0 << 3 | 2) + b"\x00", "invalid field number 0"),
        (_varint(5 << 3 | 3), "unsupported wire type 3"),
        (_varint(5 << 3 | 1) + b"\x00", "truncated fixed64 field 5"),
        (_varint(5 << 3) + b"\xff" * 10 + b"\x01", "longer than 10 bytes"),
        (_varint(5 << 3) + b"\xff" * 9 + b"\x7f", "overflows 64 bits"),
        (_f(1, _f(11, _f(1, 3))), r"Namespace\.metadata\.labels\[0\]: map entry field 1 .* wire type 0"),
    ],
)
def test_malformed_object(raw: bytes, message: str) -> None:
    with pytest.raises(ProtobufError, match=message):
        decode_object(_body("v1", "Namespace", raw))


def test_unsupported_kind_and_encoding() -> None:
    with pytest.raises(UnsupportedKindError, match=r"no protobuf schema for Pod \(v1\)"):
        decode_object(_body("v1", "Pod", b""))
    with pytest.raises(UnsupportedKindError, match=r"Namespace \(apps/v1\)"):
        decode_object(_body("apps/v1", "Namespace", b""))
    gzip = MAGIC + _f(1, _f(1, "v1") + _f(2, "Namespace")) + _f(2, b"") + _f(3, "gzip")
    with pytest.raises(ProtobufError, match="contentEncoding 'gzip' is not supported"):
        decode_object(gzip)
    assert issubclass(ProtobufError, ValueError)


# --- the real kubectl -----------------------------------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    """Records each POST and answers in JSON, echoing the decoded object, as the sandbox will."""

    requests: list[tuple[str, dict[str, str], bytes]]
    status = 201

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.requests.append((self.path, dict(self.headers), body))
        if self.status == 201:
            obj = decode_object(body)
            obj["metadata"]["name"] = obj["metadata"].get("name") or "x"
            obj["status"] = {"token": "tok"} if obj["kind"] == "TokenRequest" else obj.get("status", {})
        else:
            obj = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": self.status}
        out = json.dumps(obj).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


@pytest.fixture
def capture(tmp_path: Path) -> Iterator[tuple[type[_Recorder], Path]]:
    """A loopback server recording kubectl's requests, and a kubeconfig pointing at it."""
    if not KUBECTL_133.exists():
        pytest.skip(f"{KUBECTL_133} is not installed")
    handler = type("Handler", (_Recorder,), {"requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
                "users": [{"name": "u", "user": {"token": "test-token"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "default"}}],
                "current-context": "x",
            }
        )
    )
    try:
        yield handler, kubeconfig
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _kubectl(kubeconfig: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(kubeconfig.parent), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    cmd = [str(KUBECTL_133), "--kubeconfig", str(kubeconfig), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)


@pytest.mark.slow
def test_kubectl_133_still_sends_the_fixture_bytes(capture: tuple[type[_Recorder], Path]) -> None:
    handler, kubeconfig = capture
    binary = kubeconfig.parent / "bin.dat"
    binary.write_bytes(b"\x00\x01\x02\xff")
    for name, args in COMMANDS.items():
        handler.requests.clear()
        proc = _kubectl(kubeconfig, ["create", *shlex.split(args.format(bin=binary))])
        assert proc.returncode == 0, f"{name}: kubectl rejected a JSON answer: {proc.stderr}"
        assert len(handler.requests) == 1, name
        _, headers, body = handler.requests[0]
        assert headers["Content-Type"] == "application/vnd.kubernetes.protobuf", name
        assert headers["Accept"] == "application/vnd.kubernetes.protobuf,application/json", name
        assert body == _fixture(f"create-{name}-1.33.bin"), name


@pytest.mark.slow
def test_kubectl_133_does_not_retry_with_json_after_415(capture: tuple[type[_Recorder], Path]) -> None:
    handler, kubeconfig = capture
    handler.status = 415
    proc = _kubectl(kubeconfig, ["create", *shlex.split(COMMANDS["namespace"])])
    assert proc.returncode != 0
    assert [headers["Content-Type"] for _, headers, _ in handler.requests] == ["application/vnd.kubernetes.protobuf"]
