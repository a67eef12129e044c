"""kubectl, run as a user would, against a sandbox; under two kubectl minors (picked by /version)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from meshbook.sandbox import control
from tests.sandbox.conftest import (
    KUBECTL,
    KUBECTL_IDS,
    KUBECTL_VERSIONS,
    RunningSandbox,
    running_sandbox,
    start_sandbox,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl not installed"),
]

APP = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  namespace: {ns}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: app}}
  template:
    metadata:
      labels: {{app: app}}
    spec:
      initContainers:
      - name: init-ubuntu
        image: ubuntu
        command: ["sh", "-c", "echo $GREETING from init && echo initContainers ready"]
        env: [{{name: GREETING, value: hello}}]
      containers:
      - name: app
        image: alpine
        command: ["sh", "-c", "echo $GREETING && echo going to sleep... && sleep 10000"]
        env: [{{name: GREETING, value: {greeting}}}]
"""

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.meshbook.dev
spec:
  group: example.meshbook.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wdg], categories: [all]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
"""


@pytest.fixture(scope="module", params=KUBECTL_VERSIONS, ids=KUBECTL_IDS)
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path_factory.mktemp("kubectl"), request.param) as running:
        yield running


@pytest.fixture
def ns(cluster: RunningSandbox) -> str:
    name = f"k-{uuid.uuid4().hex[:6]}"
    assert cluster.kubectl("create", "namespace", name).stdout.strip() == f"namespace/{name} created"
    return name


def test_kubectl_picks_the_servers_minor(cluster: RunningSandbox) -> None:
    out = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    minor = out["serverVersion"]["minor"]
    assert minor in ("33", "28")
    assert out["clientVersion"]["minor"].rstrip("+") == minor


def test_label_and_unlabel_namespace(cluster: RunningSandbox, ns: str) -> None:
    assert (
        cluster.kubectl("label", "namespace", ns, "istio-injection=enabled").stdout.strip() == f"namespace/{ns} labeled"
    )
    labels = json.loads(cluster.kubectl("get", "namespace", ns, "-o", "json").stdout)["metadata"]["labels"]
    assert labels == {"istio-injection": "enabled", "kubernetes.io/metadata.name": ns}
    cluster.kubectl("label", "namespace", ns, "istio-injection-")
    out = cluster.kubectl("get", "namespace", ns, "-o", "jsonpath={.metadata.labels}").stdout
    assert "istio-injection" not in out


def test_apply_twice_then_server_side_and_diff(cluster: RunningSandbox, ns: str, tmp_path: Path) -> None:
    manifest = tmp_path / "app.yaml"
    manifest.write_text(APP.format(ns=ns, replicas=1, greeting="first"))
    assert cluster.kubectl("apply", "-f", str(manifest)).stdout.strip() == "deployment.apps/app created"
    cluster.kubectl("rollout", "status", "deployment/app", "-n", ns, "--timeout=60s")
    manifest.write_text(APP.format(ns=ns, replicas=2, greeting="second"))
    diff = cluster.kubectl("diff", "-f", str(manifest), check=False)
    assert diff.returncode == 1, diff.stderr  # 1: differences found
    assert "-  replicas: 1" in diff.stdout and "+  replicas: 2" in diff.stdout
    assert cluster.kubectl("apply", "-f", str(manifest)).stdout.strip() == "deployment.apps/app configured"
    deploy = json.loads(cluster.kubectl("get", "deploy", "app", "-n", ns, "-o", "json").stdout)
    assert deploy["spec"]["replicas"] == 2
    assert deploy["metadata"]["generation"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in deploy["metadata"]["annotations"]
    manifest.write_text(APP.format(ns=ns, replicas=3, greeting="third"))
    out = cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(manifest)).stdout
    assert out.strip() == "deployment.apps/app serverside-applied"
    cluster.kubectl("rollout", "status", "deployment/app", "-n", ns, "--timeout=60s")
    assert cluster.kubectl("get", "deploy", "app", "-n", ns, "-o", "jsonpath={.status.readyReplicas}").stdout == "3"
    assert cluster.kubectl("diff", "-f", str(manifest), check=False).returncode == 0
    logs = cluster.kubectl("logs", "-n", ns, "deployment/app", "app").stdout
    assert logs == "third\ngoing to sleep...\n"
    logs = cluster.kubectl("logs", "-n", ns, "deploy/app", "-c", "init-ubuntu").stdout
    assert logs == "hello from init\ninitContainers ready\n"


def test_apply_from_stdin_server_side_creates(cluster: RunningSandbox, ns: str) -> None:
    doc = f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: {ns}\ndata:\n  a: '1'\n"
    assert (
        cluster.kubectl("apply", "--server-side", "-f", "-", input=doc).stdout.strip()
        == "configmap/cfg serverside-applied"
    )
    assert (
        cluster.kubectl("apply", "-f", "-", input=doc.replace("'1'", "'2'")).stdout.strip()
        == "configmap/cfg configured"
    )
    assert cluster.kubectl("get", "cm", "cfg", "-n", ns, "-o", "jsonpath={.data.a}").stdout == "2"


def test_get_pods_columns_and_output_formats(cluster: RunningSandbox, ns: str, tmp_path: Path) -> None:
    cluster.kubectl("apply", "-f", "-", input=APP.format(ns=ns, replicas=1, greeting="hi"))
    cluster.kubectl("wait", "--for=condition=Ready", "pod", "-l", "app=app", "-n", ns, "--timeout=60s")
    table = cluster.kubectl("get", "pods", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    row = table[1].split()
    assert row[0].startswith("app-") and row[1:4] == ["1/1", "Running", "0"]
    doc = yaml.safe_load(cluster.kubectl("get", "pods", "-n", ns, "-o", "yaml").stdout)
    assert doc["kind"] == "List" and doc["items"][0]["kind"] == "Pod"
    names = cluster.kubectl("get", "pods", "-n", ns, "-o", "jsonpath={.items[*].spec.containers[*].name}").stdout
    assert names == "app"
    everything = cluster.kubectl("get", "all", "-A").stdout
    for expected in (
        f"{ns}        pod/app-",
        "deployment.apps/app",
        "replicaset.apps/app-",
        "service/kubernetes",
    ):
        assert expected.split()[-1] in everything


def test_logs_follow_ends_with_the_container(cluster: RunningSandbox, ns: str) -> None:
    pod = (
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: once, namespace: {ns}}}\nspec:\n  restartPolicy: Never\n"
        "  containers:\n  - name: c\n    image: alpine\n    command: [sh, -c, 'echo one; sleep 2; echo two']\n"
    )
    cluster.kubectl("apply", "-f", "-", input=pod)
    cluster.kubectl("wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/once", "-n", ns, "--timeout=60s")
    assert cluster.kubectl("logs", "-f", "once", "-n", ns, timeout=60).stdout == "one\ntwo\n"
    table = cluster.kubectl("get", "pod", "once", "-n", ns, "--no-headers").stdout.split()
    assert table[1:3] == ["0/1", "Completed"]


def test_delete_all_pods_brings_replacements(cluster: RunningSandbox, ns: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=APP.format(ns=ns, replicas=2, greeting="hi"))
    cluster.kubectl("rollout", "status", "deployment/app", "-n", ns, "--timeout=60s")
    before = set(cluster.kubectl("get", "pods", "-n", ns, "-o", "name").stdout.split())
    out = cluster.kubectl("delete", "pods", "--all", "-n", ns, "--timeout=60s").stdout
    assert all(f'{p.split("/")[1]}" deleted' in out for p in before)
    cluster.kubectl("rollout", "status", "deployment/app", "-n", ns, "--timeout=60s")
    cluster.kubectl("wait", "--for=condition=Ready", "pod", "-l", "app=app", "-n", ns, "--timeout=60s")
    after = set(cluster.kubectl("get", "pods", "-n", ns, "-o", "name").stdout.split())
    assert len(after) == 2 and not (before & after)


def test_scale(cluster: RunningSandbox, ns: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=APP.format(ns=ns, replicas=1, greeting="hi"))
    assert (
        cluster.kubectl("scale", "deployment/app", "-n", ns, "--replicas=3").stdout.strip()
        == "deployment.apps/app scaled"
    )
    cluster.kubectl("rollout", "status", "deployment/app", "-n", ns, "--timeout=60s")
    ready = cluster.kubectl("get", "deploy", "app", "-n", ns, "--no-headers").stdout.split()[1]
    assert ready == "3/3"


def test_create_commands_protobuf_on_new_minors(cluster: RunningSandbox, ns: str) -> None:
    assert (
        cluster.kubectl("create", "serviceaccount", "robot", "-n", ns).stdout.strip() == "serviceaccount/robot created"
    )
    cluster.kubectl("create", "secret", "generic", "s", "--from-literal=k=v", "-n", ns)
    cluster.kubectl("create", "configmap", "c", "--from-literal=k=v", "-n", ns)
    cluster.kubectl("create", "deployment", "web", "--image=nginx", "--replicas=2", "-n", ns)
    assert cluster.kubectl("get", "secret", "s", "-n", ns, "-o", "jsonpath={.data.k}").stdout == "dg=="
    token = cluster.kubectl("create", "token", "robot", "-n", ns).stdout.strip()
    assert token.count(".") == 2
    cluster.kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=60s")


def test_crd_and_short_names(cluster: RunningSandbox, ns: str) -> None:
    cluster.kubectl("apply", "-f", "-", input=CRD)
    cluster.kubectl("wait", "--for=condition=Established", "crd/widgets.example.meshbook.dev", "--timeout=60s")
    widget = (
        f"apiVersion: example.meshbook.dev/v1\nkind: Widget\nmetadata: {{name: w1, namespace: {ns}}}\n"
        "spec: {size: 3}\n"
    )
    cluster.kubectl("apply", "-f", "-", input=widget)
    rows = cluster.kubectl("get", "wdg", "-n", ns).stdout.splitlines()
    assert rows[0].split() == ["NAME", "SIZE", "AGE"]
    assert rows[1].split()[:2] == ["w1", "3"]
    cluster.kubectl("apply", "-f", "-", input=widget.replace("size: 3", "size: 5"))
    assert cluster.kubectl("get", "widget", "w1", "-n", ns, "-o", "jsonpath={.spec.size}").stdout == "5"
    assert "widget.example.meshbook.dev/w1" in cluster.kubectl("get", "all", "-n", ns).stdout


def test_dry_run_server_persists_nothing(cluster: RunningSandbox, ns: str) -> None:
    out = cluster.kubectl("create", "configmap", "dry", "-n", ns, "--dry-run=server", "-o", "name").stdout
    assert out.strip() == "configmap/dry"
    missing = cluster.kubectl("get", "configmap", "dry", "-n", ns, check=False)
    assert missing.returncode == 1 and 'configmaps "dry" not found' in missing.stderr


def test_unknown_resource_and_missing_object_errors(cluster: RunningSandbox, ns: str) -> None:
    proc = cluster.kubectl("get", "pod", "nope", "-n", ns, check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == 'Error from server (NotFound): pods "nope" not found'


def test_restart_keeps_objects_and_resource_versions_grow(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = start_sandbox(state)
    try:
        first.kubectl("create", "namespace", "keep")
        first.kubectl("create", "configmap", "c", "-n", "keep", "--from-literal=a=b")
        rv = int(first.kubectl("get", "cm", "c", "-n", "keep", "-o", "jsonpath={.metadata.resourceVersion}").stdout)
    finally:
        first.api.close()
        control.down(state)
    assert control.running(state) is None
    second = start_sandbox(state)
    try:
        assert second.kubectl("get", "cm", "c", "-n", "keep", "-o", "jsonpath={.data.a}").stdout == "b"
        second.kubectl("create", "configmap", "d", "-n", "keep")
        rv2 = int(second.kubectl("get", "cm", "d", "-n", "keep", "-o", "jsonpath={.metadata.resourceVersion}").stdout)
        assert rv2 > rv
    finally:
        second.api.close()
        control.down(state)


def test_second_up_reuses_a_live_state_dir(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = start_sandbox(state)
    try:
        info, started = control.up(state)
        assert not started and info.pid == first.info.pid and info.port == first.info.port
        assert (state / "kubeconfig").stat().st_mode & 0o777 == 0o600
    finally:
        first.api.close()
        control.down(state)


def test_cli_up_status_down(tmp_path: Path) -> None:
    state = tmp_path / "cli"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "meshbook", "sandbox", *args, "--state", str(state)]
        return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)

    up = run("up")
    assert up.returncode == 0, up.stderr
    assert f"export KUBECONFIG={state}/kubeconfig" in up.stdout
    assert run("status").returncode == 0
    assert run("kubeconfig").stdout.strip() == f"{state}/kubeconfig"
    assert "stopped" in run("down").stdout
    assert run("status").returncode == 3
