"""The failures the guide warns about, on the sandbox, with the symptoms a user really sees.

Typed as a user would (kubectl, `meshbook sandbox install`, `meshbook manifests`), like
`test_scenarios.py`, whose helpers are copied here with each manifest rendered once per session.
Expected error texts are written out in full: they are what the connectivity model
(`meshbook.mesh.connectivity`) says a Go client reports (FACTS 4 and 6; where the model follows current
Istio rather than FACTS, e.g. STRICT answering a TLS client with the workload certificate, the model's
text is expected). Nothing here sleeps: waits are `kubectl wait`, `rollout status`, `kubectl get -w` or
watches of the official client, all with generous timeouts. Tests that start from the same installation
share one sandbox (per module) and work in the `app` namespace, deleted after each.

Several assertions pin sandbox bugs these tests found and that are now fixed (each says so): the
ReplicaSet's FailedCreate event, PodInitializing for containers waiting behind init containers (STATUS
and `kubectl logs`), and a vault-0 that stays Ready (its CA file was rewritten in place and flapped).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import re
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
from kubernetes import client, watch
from kubernetes.stream import portforward

from tests.sandbox.conftest import KUBECTL, RunningSandbox, running_sandbox, wait_for
from tests.sandbox.test_scenarios import (
    SECRET,
    WAIT,
    apply_manifest,
    install_app,
    install_vault,
    prerequisites,
    ready_counts,
    rendered,
)

pytestmark = pytest.mark.slow

TIMEOUT = 120  # seconds: generous bound on every watch; the happy path never gets near it
REFERENCE = "vault:secret/data/accounts/aws#AWS_SECRET_ACCESS_KEY"  # the app's env value, unmutated
APP_SELECTOR = "app.kubernetes.io/name=app"
POD_WEBHOOK = "pods.vault-secrets-webhook.admission.banzaicloud.com"
WEBHOOK_URL = "https://vault-secrets-webhook.vault-system.svc:443/pods?timeout=10s"
# kube-apiserver -> webhook pod with a sidecar under STRICT: the API server is outside the mesh and
# speaks TLS itself, so the sidecar answers with the Istio workload certificate (no DNS names).
WEBHOOK_X509 = (
    "tls: failed to verify certificate: x509: certificate is not valid for any names, "
    "but wanted to match vault-secrets-webhook.vault-system.svc"
)
WEBHOOK_FAILURE = (
    f'failed calling webhook "{POD_WEBHOOK}": failed to call webhook: Post "{WEBHOOK_URL}": {WEBHOOK_X509}'
)
LOGIN_URL = "https://vault.vault:8200/v1/auth/kubernetes/login"
# vault-env (not captured: no sidecar, or a classic init container) -> vault-0 with a sidecar under STRICT.
VAULT_X509 = (
    "tls: failed to verify certificate: x509: certificate is not valid for any names, but wanted to match vault.vault"
)
TIMEOUT_LINE = (
    'level=ERROR msg="failed to create vault client" app=vault-env err="timeout [10s] during waiting for Vault token"'
)
SLOG_TIME = re.compile(r"^time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")


def token_failure(cause: str) -> str:
    """vault-env's line for one failed login attempt (slog text; the time stamp is stripped)."""
    err = f'Put "{LOGIN_URL}": {cause}'.replace('"', '\\"')
    return f'level=ERROR msg="failed to request new Vault token" app=vault-env err="{err}"'


# -- helpers -------------------------------------------------------------------------------------


def lines(text: str) -> list[str]:
    return text.splitlines()


def untimed(log: str) -> list[str]:
    """vault-env's slog lines without their `time=` field (every line must carry one)."""
    out = []
    for line in log.splitlines():
        assert SLOG_TIME.match(line), line
        out.append(SLOG_TIME.sub("", line))
    return out


def app_pods(sandbox: RunningSandbox, namespace: str = "app") -> list[dict[str, Any]]:
    """The app's pods that are not being deleted, as `kubectl get pods -o json` returns them."""
    out = sandbox.kubectl("get", "pods", "-n", namespace, "-l", APP_SELECTOR, "-o", "json").stdout
    return [p for p in json.loads(out)["items"] if not p["metadata"].get("deletionTimestamp")]


def the_app_pod(sandbox: RunningSandbox) -> dict[str, Any]:
    pods = app_pods(sandbox)
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    return pods[0]


def names(containers: list[dict[str, Any]] | None) -> list[str]:
    return [c["name"] for c in containers or []]


def status_of(pod: dict[str, Any], container: str) -> dict[str, Any]:
    status = pod["status"]
    for entry in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        if entry["name"] == container:
            return dict(entry)
    raise AssertionError(f"no status for container {container}")


def watch_pod_rows(
    sandbox: RunningSandbox, namespace: str, until: Callable[[list[str]], bool], timeout: float = TIMEOUT
) -> list[str]:
    """`kubectl get pods -n NS --watch --no-headers` until a row satisfies `until`; that row's columns."""
    env = {**os.environ, "KUBECONFIG": str(sandbox.kubeconfig)}
    proc = subprocess.Popen(
        [KUBECTL, "get", "pods", "-n", namespace, "--watch", "--no-headers"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    rows: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            rows.put(line)
        rows.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        while True:
            try:
                line = rows.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no matching row within {timeout}s; rows seen: {seen}") from None
            if line is None:
                raise AssertionError(f"kubectl get --watch ended; rows seen: {seen}")
            seen.append(line.rstrip("\n"))
            columns = line.split()
            if until(columns):
                return columns
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        reader.join(timeout=30)


def crash_looping_init(columns: list[str]) -> bool:
    """A pod row in Init:CrashLoopBackOff after at least two restarts (so `logs -p` is a whole run)."""
    return len(columns) >= 4 and columns[2] == "Init:CrashLoopBackOff" and int(columns[3]) >= 2


def assert_init_fails_with(sandbox: RunningSandbox, cause: str) -> dict[str, Any]:
    """The app pod crash-loops in init-ubuntu: each vault-env run retries the login until its 10 s
    VAULT_CLIENT_TIMEOUT, then exits 1. Returns the pod."""
    row = watch_pod_rows(sandbox, "app", crash_looping_init)
    previous = sandbox.kubectl("logs", "-n", "app", "deploy/app", "-c", "init-ubuntu", "-p").stdout
    run = untimed(previous)
    assert len(run) >= 2, run
    assert set(run[:-1]) == {token_failure(cause)}  # the same refusal at every attempt (vault-0 never flaps)
    assert run[-1] == TIMEOUT_LINE
    pod = the_app_pod(sandbox)
    assert pod["metadata"]["name"] == row[0]
    init = status_of(pod, "init-ubuntu")
    assert init["lastState"]["terminated"]["exitCode"] == 1
    assert init["lastState"]["terminated"]["reason"] == "Error"
    assert init["restartCount"] >= 2
    copy = status_of(pod, "copy-vault-env")  # the webhook's own init container needs no network
    assert copy["state"]["terminated"]["exitCode"] == 0
    app = status_of(pod, "app")  # the main container never starts while an init container fails
    assert app["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert app["restartCount"] == 0
    assert pod["status"]["phase"] == "Pending"
    assert_waiting_to_start(sandbox, pod["metadata"]["name"], "app")
    return pod


def assert_waiting_to_start(sandbox: RunningSandbox, pod: str, container: str) -> None:
    """`kubectl logs` of a container still waiting behind the init containers: the kubelet names the
    container's waiting reason (once a sandbox bug: it always said ContainerCreating)."""
    logs = sandbox.kubectl("logs", "-n", "app", pod, "-c", container, check=False)
    assert (logs.returncode, logs.stdout) == (1, "")
    assert logs.stderr == (
        f'Error from server (BadRequest): container "{container}" in pod "{pod}" is waiting to start: PodInitializing\n'
    )


def app_logs(sandbox: RunningSandbox, pod: str) -> tuple[list[str], list[str]]:
    """(init-ubuntu's output, app's last two lines) of `pod`."""
    init = lines(sandbox.kubectl("logs", "-n", "app", pod, "-c", "init-ubuntu").stdout)
    app = lines(sandbox.kubectl("logs", "-n", "app", pod, "-c", "app").stdout)
    return init[-2:], app[-2:]


def replace_app_pod(sandbox: RunningSandbox) -> str:
    """Delete the app's pod and wait until its replacement is Ready; the new pod's name."""
    old = the_app_pod(sandbox)["metadata"]["name"]
    sandbox.kubectl("delete", "pod", old, "-n", "app", WAIT)
    core = client.CoreV1Api(sandbox.api)
    pod: Any = wait_for(
        core.list_namespaced_pod,
        lambda p: (
            p.metadata.name != old
            and not p.metadata.deletion_timestamp
            and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        ),
        timeout=TIMEOUT,
        namespace="app",
        label_selector=APP_SELECTOR,
    )
    return str(pod.metadata.name)


def secret_value(sandbox: RunningSandbox, namespace: str, name: str, key: str) -> bytes:
    """A Secret's value through the official client (never printed; kubectl would echo it on failure)."""
    secret = client.CoreV1Api(sandbox.api).read_namespaced_secret(name, namespace)
    return base64.b64decode(secret.data[key])


@contextlib.contextmanager
def port_forward(sandbox: RunningSandbox, namespace: str, pod: str, port: int) -> Iterator[int]:
    """A local port relaying each connection through its own `kubernetes.stream.portforward`.

    The official client hands out one socket per forwarded port; clients such as hvac (requests) dial
    an address, so a small relay listens on 127.0.0.1 and pumps bytes both ways.
    """
    core = client.CoreV1Api(sandbox.api)
    listener = socket.create_server(("127.0.0.1", 0))
    forwards: list[Any] = []
    accepted: list[socket.socket] = []

    def pump(src: Any, dst: Any) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            pf = portforward(core.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port))
            remote = pf.socket(port)
            forwards.append(pf)
            accepted.append(conn)
            for src, dst in ((conn, remote), (remote, conn)):
                threading.Thread(target=pump, args=(src, dst), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.close()
        for conn in accepted:
            conn.close()
        for pf in forwards:
            with contextlib.suppress(Exception):
                pf.close()


@contextlib.contextmanager
def vault_api(sandbox: RunningSandbox, tmp_path: Path) -> Iterator[hvac.Client]:
    """hvac, logged in with the root token, talking to vault-0:8200 (the real OpenBao) via port-forward.

    The server certificate carries IP SAN 127.0.0.1, so the CA from Secret `vault-tls` verifies it.
    """
    ca = tmp_path / "vault-ca.crt"
    ca.write_bytes(secret_value(sandbox, "vault", "vault-tls", "ca.crt"))
    token = secret_value(sandbox, "vault", "vault-unseal-keys", "vault-root").decode()
    with port_forward(sandbox, "vault", "vault-0", 8200) as local:
        api = hvac.Client(url=f"https://127.0.0.1:{local}", token=token, verify=str(ca), timeout=30)
        try:
            yield api
        finally:
            api.adapter.close()


# -- sandboxes shared by the tests that start from the same installation ---------------------------------
# Installing the prerequisites and Vault is most of a test's time. Tests that start from the same
# installation share one sandbox per module and work only in the `app` namespace, which `app_removed`
# deletes after each (waiting until it is gone); a test that changes anything else puts it back itself.


@contextlib.contextmanager
def _installed(
    factory: pytest.TempPathFactory, name: str, install: Callable[[RunningSandbox, Path], None]
) -> Iterator[tuple[RunningSandbox, Path]]:
    state = factory.mktemp(name) / "state"
    with running_sandbox(state) as sandbox:
        install(sandbox, state)
        yield sandbox, state


def _without_app(shared: tuple[RunningSandbox, Path]) -> Iterator[tuple[RunningSandbox, Path]]:
    sandbox, _ = shared
    leftover = sandbox.kubectl("get", "namespace", "app", "--ignore-not-found", "-o", "name").stdout
    assert not leftover.strip(), "the namespace app is left over from an earlier test on this shared sandbox"
    yield shared
    sandbox.kubectl("delete", "namespace", "app", "--ignore-not-found", WAIT)  # returns once it is gone


@pytest.fixture(scope="module")
def guide_vault_installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningSandbox, Path]]:
    """The prerequisites and the guide's Vault (outside the mesh, with its PERMISSIVE policy)."""

    def install(sandbox: RunningSandbox, state: Path) -> None:
        prerequisites(sandbox, state)
        install_vault(sandbox)

    with _installed(tmp_path_factory, "guide-vault", install) as shared:
        yield shared


@pytest.fixture
def guide_vault(guide_vault_installed: tuple[RunningSandbox, Path]) -> Iterator[tuple[RunningSandbox, Path]]:
    """guide_vault_installed for one test: no `app` namespace before it, none left after it."""
    yield from _without_app(guide_vault_installed)


@pytest.fixture(scope="module")
def strict_vault_in_mesh_installed(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningSandbox, Path]]:
    """The prerequisites and Vault in the mesh without its PERMISSIVE policy (classic sidecars)."""

    def install(sandbox: RunningSandbox, state: Path) -> None:
        prerequisites(sandbox, state)
        install_vault(sandbox, permissive=False, inject=True)

    with _installed(tmp_path_factory, "strict-vault", install) as shared:
        yield shared


@pytest.fixture
def strict_vault_in_mesh(
    strict_vault_in_mesh_installed: tuple[RunningSandbox, Path],
) -> Iterator[tuple[RunningSandbox, Path]]:
    """strict_vault_in_mesh_installed for one test: no `app` namespace before it, none left after it."""
    yield from _without_app(strict_vault_in_mesh_installed)


# -- 1 and 2: the webhook under mesh-wide STRICT ------------------------------------------------------


def test_webhook_without_permissive_and_policy_ignore_admits_the_app_unmutated(
    cluster: tuple[RunningSandbox, Path],
) -> None:
    """Scenario 1 minus the webhook's PERMISSIVE: the API server's call is refused by the webhook's
    sidecar, failurePolicy Ignore admits the pod as it is, and the app prints the `vault:` reference."""
    sandbox, state = cluster
    prerequisites(sandbox, state, webhook_permissive=False)
    install_app(sandbox)  # no Vault needed: nothing will ask it for anything
    assert ready_counts(sandbox, "app") == {"app": "2/2"}  # app + istio-proxy, no error anywhere
    pod = the_app_pod(sandbox)
    spec = pod["spec"]
    assert names(spec["initContainers"]) == ["init-ubuntu", "istio-init"]  # no copy-vault-env
    assert names(spec["containers"]) == ["app", "istio-proxy"]
    assert {v["name"] for v in spec["volumes"]}.isdisjoint({"vault-env", "vault-tls"})
    for container in spec["initContainers"][:1] + spec["containers"][:1]:
        assert container["command"] == ["sh", "-c", container["command"][2]]  # not /vault/vault-env
        assert container["env"] == [{"name": "AWS_SECRET_ACCESS_KEY", "value": REFERENCE}]
        assert "volumeMounts" not in container
    init, app = app_logs(sandbox, pod["metadata"]["name"])
    assert init == [REFERENCE, "initContainers ready"]
    assert app == [REFERENCE, "going to sleep..."]
    full = sandbox.kubectl("logs", "-n", "app", "deploy/app").stdout
    assert lines(full) == [REFERENCE, "going to sleep..."]  # no vault-env line at all


BARE_POD = f"""\
apiVersion: v1
kind: Pod
metadata:
  name: bare
  namespace: app
  annotations:
    vault.security.banzaicloud.io/vault-addr: https://vault.vault:8200
    vault.security.banzaicloud.io/vault-tls-secret: vault-tls
spec:
  containers:
  - name: app
    image: alpine:3.22
    command: ["sh", "-c", "echo $AWS_SECRET_ACCESS_KEY && sleep 10000"]
    env:
    - name: AWS_SECRET_ACCESS_KEY
      value: "{REFERENCE}"
"""


def test_webhook_without_permissive_and_policy_fail_rejects_every_pod(cluster: tuple[RunningSandbox, Path]) -> None:
    """With `--pods-failure-policy Fail` the same unreachable webhook rejects pod creation: the
    ReplicaSet creates nothing, and a bare pod gets the API server's error. PERMISSIVE heals it."""
    sandbox, state = cluster
    prerequisites(sandbox, state, webhook_permissive=False, policy="Fail")
    sandbox.kubectl("create", "namespace", "app")
    sandbox.kubectl("label", "namespace", "app", "istio-injection=enabled")
    apply_manifest(sandbox, "app")
    # The ReplicaSet controller reports each rejected create (once a sandbox bug: it reported nothing).
    event: Any = wait_for(
        client.CoreV1Api(sandbox.api).list_namespaced_event,
        lambda e: e.reason == "FailedCreate",
        timeout=TIMEOUT,
        namespace="app",
    )
    assert (event.type, event.involved_object.kind) == ("Warning", "ReplicaSet")
    assert event.message == f"Error creating: Internal error occurred: {WEBHOOK_FAILURE}"
    rs = ["replicaset", "-n", "app", "-l", APP_SELECTOR]
    sandbox.kubectl("wait", "--for=condition=ReplicaFailure", *rs, WAIT)
    failure = sandbox.kubectl("get", *rs, "-o", 'jsonpath={.items[0].status.conditions[?(@.type=="ReplicaFailure")]}')
    condition = json.loads(failure.stdout)
    assert (condition["status"], condition["reason"]) == ("True", "FailedCreate")
    assert condition["message"] == f"Internal error occurred: {WEBHOOK_FAILURE}"

    bare = sandbox.kubectl("create", "-f", "-", input=BARE_POD, check=False)
    assert bare.returncode == 1
    assert bare.stdout == ""
    assert bare.stderr == (
        f'Error from server (InternalError): error when creating "STDIN": Internal error occurred: {WEBHOOK_FAILURE}\n'
    )
    # The webhook matches every pod outside its own namespace, vault references or not ...
    plain = sandbox.kubectl("run", "plain", "-n", "app", "--image=alpine:3.22", "--", "sleep", "10000", check=False)
    assert plain.returncode == 1
    assert plain.stderr == f"Error from server (InternalError): Internal error occurred: {WEBHOOK_FAILURE}\n"
    # ... except those its objectSelector leaves out.
    skip = sandbox.kubectl(
        "run", "skip", "-n", "app", "--image=alpine:3.22", "--labels=security.banzaicloud.io/mutate=skip",
        "--", "sleep", "10000",
    )  # fmt: skip
    assert skip.stdout == "pod/skip created\n"

    none = sandbox.kubectl("get", "pods", "-n", "app", "-l", APP_SELECTOR)
    assert (none.stdout, none.stderr) == ("", "No resources found in app namespace.\n")
    deploy = sandbox.kubectl("get", "deployment", "app", "-n", "app", "--no-headers").stdout.split()
    assert deploy[:4] == ["app", "0/1", "0", "0"]

    # The fix: PERMISSIVE for the webhook. The ReplicaSet's retries now create a mutated pod.
    apply_manifest(sandbox, "webhook-permissive")
    install_vault(sandbox)
    sandbox.kubectl("rollout", "status", "deployment/app", "-n", "app", WAIT)
    pod = the_app_pod(sandbox)
    assert names(pod["spec"]["initContainers"]) == ["copy-vault-env", "init-ubuntu", "istio-init"]
    init, app = app_logs(sandbox, pod["metadata"]["name"])
    assert init == [SECRET, "initContainers ready"]
    assert app == [SECRET, "going to sleep..."]


# -- 3, 4 and 5: vault-env against Vault in the mesh ---------------------------------------------------


def test_scenario_two_without_vault_permissive_crash_loops_in_init(
    strict_vault_in_mesh: tuple[RunningSandbox, Path],
) -> None:
    """Vault in the mesh under STRICT, app outside: vault-env has no sidecar, so its own TLS meets
    vault-0's sidecar, which answers with the Istio workload certificate; the Go client rejects it.

    The first vault-env to run is init-ubuntu's (init containers run before the app container), so it is
    the one that exits 1 and crash-loops: the pod shows Init:CrashLoopBackOff, never CrashLoopBackOff,
    and the app container waits in PodInitializing.
    """
    sandbox, _ = strict_vault_in_mesh
    assert ready_counts(sandbox, "vault") == {"vault-0": "4/4", "vault-configurer": "2/2"}
    install_app(sandbox, inject=False, wait=False)
    pod = assert_init_fails_with(sandbox, VAULT_X509)
    assert names(pod["spec"]["initContainers"]) == ["copy-vault-env", "init-ubuntu"]  # no sidecar
    assert names(pod["spec"]["containers"]) == ["app"]
    row = sandbox.kubectl("get", "pod", pod["metadata"]["name"], "-n", "app", "--no-headers").stdout.split()
    assert row[1] == "0/1"


def test_scenario_three_without_vault_permissive_classic_fails_only_in_init(
    strict_vault_in_mesh: tuple[RunningSandbox, Path],
) -> None:
    """Both in the mesh under STRICT, classic sidecars: init-ubuntu runs before istio-init, so its
    connection is not captured and is refused like an outsider's. The app container, whose traffic
    passes its Envoy, would use mTLS: without the init container the same pod template works."""
    sandbox, _ = strict_vault_in_mesh
    assert ready_counts(sandbox, "vault") == {"vault-0": "4/4", "vault-configurer": "2/2"}
    install_app(sandbox, inject=True, wait=False)
    pod = assert_init_fails_with(sandbox, VAULT_X509)
    assert names(pod["spec"]["initContainers"]) == ["copy-vault-env", "init-ubuntu", "istio-init"]
    assert status_of(pod, "istio-init")["state"] == {"waiting": {"reason": "PodInitializing"}}
    row = sandbox.kubectl("get", "pod", pod["metadata"]["name"], "-n", "app", "--no-headers").stdout.split()
    assert row[1] == "0/2"

    old = pod["metadata"]["name"]
    sandbox.kubectl(
        "patch", "deployment", "app", "-n", "app", "--type=json",
        "-p", '[{"op": "remove", "path": "/spec/template/spec/initContainers"}]',
    )  # fmt: skip
    sandbox.kubectl("rollout", "status", "deployment/app", "-n", "app", WAIT)
    sandbox.kubectl("wait", "--for=delete", f"pod/{old}", "-n", "app", WAIT)
    assert ready_counts(sandbox, "app") == {"app": "2/2"}
    logs = lines(sandbox.kubectl("logs", "-n", "app", "deploy/app", "-c", "app").stdout)
    assert 'msg="initial Vault token arrived"' in logs[-3]
    assert logs[-2:] == [SECRET, "going to sleep..."]


def test_scenario_three_without_vault_permissive_native_sidecars_work(
    cluster: tuple[RunningSandbox, Path],
) -> None:
    """The same setup with native sidecars: istio-init and istio-proxy run before init-ubuntu, whose
    connection therefore passes its Envoy and uses mTLS, which STRICT accepts."""
    sandbox, state = cluster
    prerequisites(sandbox, state, sidecar_mode="native")
    install_vault(sandbox, permissive=False, inject=True)
    install_app(sandbox, inject=True)
    assert ready_counts(sandbox, "vault") == {"vault-0": "4/4", "vault-configurer": "2/2"}
    assert ready_counts(sandbox, "app") == {"app": "2/2"}
    pod = the_app_pod(sandbox)
    inits = pod["spec"]["initContainers"]
    # Istio's injector runs first (webhooks are called in lexical order of their configurations), then
    # the Bank-Vaults webhook PREPENDS copy-vault-env, which needs no network.
    assert names(inits) == ["copy-vault-env", "istio-init", "istio-proxy", "init-ubuntu"]
    assert inits[2]["restartPolicy"] == "Always"
    assert names(pod["spec"]["containers"]) == ["app"]
    assert status_of(pod, "init-ubuntu")["restartCount"] == 0
    init, app = app_logs(sandbox, pod["metadata"]["name"])
    assert init == [SECRET, "initContainers ready"]
    assert app == [SECRET, "going to sleep..."]


def test_cni_init_container_is_refused_until_port_8200_is_excluded(cluster: tuple[RunningSandbox, Path]) -> None:
    """Istio CNI: capture exists before any init container runs and Envoy is not running yet, so the
    init container's connection is refused, PERMISSIVE or not. Excluding port 8200 from capture fixes it."""
    sandbox, state = cluster
    prerequisites(sandbox, state, sidecar_mode="cni")
    install_vault(sandbox, permissive=True, inject=True)
    install_app(sandbox, inject=True, wait=False)
    pod = assert_init_fails_with(sandbox, "connection refused")
    assert names(pod["spec"]["initContainers"]) == ["copy-vault-env", "init-ubuntu", "istio-validation"]
    assert names(pod["spec"]["containers"]) == ["app", "istio-proxy"]

    old = pod["metadata"]["name"]
    patch = {
        "spec": {"template": {"metadata": {"annotations": {"traffic.sidecar.istio.io/excludeOutboundPorts": "8200"}}}}
    }
    sandbox.kubectl("patch", "deployment", "app", "-n", "app", "--type=merge", "-p", json.dumps(patch))
    sandbox.kubectl("rollout", "status", "deployment/app", "-n", "app", WAIT)
    sandbox.kubectl("wait", "--for=delete", f"pod/{old}", "-n", "app", WAIT)
    pod = the_app_pod(sandbox)
    assert pod["metadata"]["annotations"]["traffic.sidecar.istio.io/excludeOutboundPorts"] == "8200"
    assert status_of(pod, "init-ubuntu")["restartCount"] == 0
    assert ready_counts(sandbox, "app") == {"app": "2/2"}
    init, app = app_logs(sandbox, pod["metadata"]["name"])
    assert init == [SECRET, "initContainers ready"]
    assert app == [SECRET, "going to sleep..."]


# -- 6: the CA is not in the app's namespace yet --------------------------------------------------------


def test_app_created_before_its_namespace_has_the_ca_waits_for_the_operator(
    guide_vault: tuple[RunningSandbox, Path],
) -> None:
    """caNamespaces lists `app`, but the operator copies the CA only when it next reconciles. Until then
    the webhook's projected `vault-tls` volume cannot be set up: FailedMount, nothing starts; once the
    Secret arrives the kubelet mounts it and the pod starts and prints the secret.

    The operator is scaled to zero while the namespace and the app are created (in one `kubectl apply`),
    so "before the CA" is certain rather than a race against the ~0.2 s instant-speed reconcile.
    """
    sandbox, _ = guide_vault
    sandbox.kubectl("scale", "deployment/vault-operator", "-n", "vault-system", "--replicas=0")
    wait_for(
        client.AppsV1Api(sandbox.api).list_namespaced_deployment,
        lambda d: d.metadata.name == "vault-operator" and not d.status.ready_replicas,
        timeout=TIMEOUT,
        namespace="vault-system",
    )
    namespace = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: app\n  labels:\n    istio-injection: enabled\n"
    app = rendered("app")
    created = sandbox.kubectl("apply", "-f", "-", input=f"{namespace}---\n{app}")
    assert lines(created.stdout) == ["namespace/app created", "deployment.apps/app created"]

    core = client.CoreV1Api(sandbox.api)
    event: Any = wait_for(
        core.list_namespaced_event, lambda e: e.reason == "FailedMount", timeout=TIMEOUT, namespace="app"
    )
    assert event.type == "Warning"
    assert event.message == 'MountVolume.SetUp failed for volume "vault-tls" : secret "vault-tls" not found'
    pod = the_app_pod(sandbox)
    assert event.involved_object.name == pod["metadata"]["name"]
    assert pod["status"]["phase"] == "Pending"
    assert not any(
        s.get("started") for s in pod["status"]["initContainerStatuses"] + pod["status"]["containerStatuses"]
    )
    missing = sandbox.kubectl("get", "secret", "vault-tls", "-n", "app", check=False)
    assert missing.stderr == 'Error from server (NotFound): secrets "vault-tls" not found\n'
    # With init containers the kubelet reports every container as PodInitializing while volumes are not
    # set up, so kubectl shows Init:0/3, not ContainerCreating (once a sandbox bug: Init:ContainerCreating).
    row = sandbox.kubectl("get", "pods", "-n", "app", "--no-headers").stdout.split()
    assert row[:4] == [pod["metadata"]["name"], "0/2", "Init:0/3", "0"]
    assert names(pod["spec"]["initContainers"]) == ["copy-vault-env", "init-ubuntu", "istio-init"]
    assert_waiting_to_start(sandbox, pod["metadata"]["name"], "init-ubuntu")

    sandbox.kubectl("scale", "deployment/vault-operator", "-n", "vault-system", "--replicas=1")
    sandbox.kubectl("rollout", "status", "deployment/app", "-n", "app", WAIT)
    copied = client.CoreV1Api(sandbox.api).read_namespaced_secret("vault-tls", "app")
    assert sorted(copied.data) == ["ca.crt"]  # the CA only, never the server key
    assert the_app_pod(sandbox)["metadata"]["name"] == pod["metadata"]["name"]  # the same pod started
    init, app_tail = app_logs(sandbox, pod["metadata"]["name"])
    assert init == [SECRET, "initContainers ready"]
    assert app_tail == [SECRET, "going to sleep..."]


# -- 7 and 8: the real OpenBao behind vault-0 -----------------------------------------------------------


def test_vault_env_reads_what_openbao_holds_now(guide_vault: tuple[RunningSandbox, Path], tmp_path: Path) -> None:
    """Change the secret in OpenBao through hvac (port-forward to vault-0:8200); a new app pod prints
    the new value, so vault-env really reads it from the server. The guide's value is written back after."""
    sandbox, _ = guide_vault
    install_app(sandbox)
    first = the_app_pod(sandbox)["metadata"]["name"]
    assert app_logs(sandbox, first) == ([SECRET, "initContainers ready"], [SECRET, "going to sleep..."])

    with vault_api(sandbox, tmp_path) as vault:
        assert vault.sys.read_seal_status()["sealed"] is False
        before = vault.secrets.kv.v2.read_secret_version(
            path="accounts/aws", mount_point="secret", raise_on_deleted_version=True
        )
        assert before["data"]["data"] == {"AWS_ACCESS_KEY_ID": "secretId", "AWS_SECRET_ACCESS_KEY": SECRET}
        written = vault.secrets.kv.v2.create_or_update_secret(
            path="accounts/aws",
            secret={"AWS_ACCESS_KEY_ID": "secretId", "AWS_SECRET_ACCESS_KEY": "changed-value"},
            mount_point="secret",
        )
        assert written["data"]["version"] == before["data"]["metadata"]["version"] + 1
    try:
        assert app_logs(sandbox, first)[1] == [SECRET, "going to sleep..."]  # a running pod keeps its env
        second = replace_app_pod(sandbox)
        assert app_logs(sandbox, second) == (
            ["changed-value", "initContainers ready"],
            ["changed-value", "going to sleep..."],
        )
    finally:
        with vault_api(sandbox, tmp_path) as vault:  # the next test on this sandbox expects the guide's value
            vault.secrets.kv.v2.create_or_update_secret(
                path="accounts/aws", secret=before["data"]["data"], mount_point="secret"
            )


def bao_pid(state: Path) -> int:
    """The OpenBao process behind vault-0 (the sandbox writes its pid beside its data)."""
    return int((state / "openbao" / "vault" / "vault-0" / "bao.pid").read_text().strip())


def test_deleting_vault_0_restarts_openbao_sealed_and_bank_vaults_unseals_it(
    guide_vault: tuple[RunningSandbox, Path], tmp_path: Path
) -> None:
    """vault-0's deletion stops the OpenBao process; the new vault-0 starts it on the same storage,
    sealed; the new bank-vaults container unseals it with the stored keys (no second init); the data
    is intact, including a value written only through the API."""
    sandbox, state = guide_vault
    install_app(sandbox)
    with vault_api(sandbox, tmp_path) as vault:
        vault.secrets.kv.v2.create_or_update_secret(
            path="restart-check", secret={"written": "before the restart"}, mount_point="secret"
        )
    keys = client.CoreV1Api(sandbox.api).read_namespaced_secret("vault-unseal-keys", "vault")
    old_uid = sandbox.kubectl("get", "pod", "vault-0", "-n", "vault", "-o", "jsonpath={.metadata.uid}").stdout
    old_pid = bao_pid(state)
    assert Path(f"/proc/{old_pid}/cmdline").read_bytes().split(b"\0")[1] == b"server"

    sandbox.kubectl("delete", "pod", "vault-0", "-n", "vault", WAIT)  # returns once the pod is gone
    assert not Path(f"/proc/{old_pid}").exists()  # OpenBao stopped with its container
    core = client.CoreV1Api(sandbox.api)
    wait_for(
        core.list_namespaced_pod,
        lambda p: (
            p.metadata.name == "vault-0"
            and p.metadata.uid != old_uid
            and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        ),
        timeout=TIMEOUT,
        namespace="vault",
    )
    assert ready_counts(sandbox, "vault") == {"vault-0": "3/3", "vault-configurer": "1/1"}
    new_pid = bao_pid(state)
    assert new_pid != old_pid

    # OpenBao's own log: the first server sealed itself on shutdown; the second came up on the same
    # storage, was never initialised again, and was unsealed.
    log = (state / "openbao" / "vault" / "vault-0" / "bao.log").read_text()
    runs = re.split(r"^--- meshbook: starting bao server on .* ---$", log, flags=re.MULTILINE)[1:]
    assert len(runs) == 2
    assert runs[0].index("==> OpenBao shutdown triggered") < runs[0].rindex("core: vault is sealed")
    assert log.count("core: security barrier initialized") == 1
    assert "core: security barrier initialized" in runs[0]
    assert "core: vault is unsealed" in runs[1]
    unsealer = lines(sandbox.kubectl("logs", "vault-0", "-n", "vault", "-c", "bank-vaults").stdout)
    assert unsealer == ['time="" level=info msg="vault is unsealed"']
    after = client.CoreV1Api(sandbox.api).read_namespaced_secret("vault-unseal-keys", "vault")
    assert after.metadata.resource_version == keys.metadata.resource_version  # same keys, no re-init

    with vault_api(sandbox, tmp_path) as vault:
        assert vault.sys.read_seal_status()["sealed"] is False
        kept = vault.secrets.kv.v2.read_secret_version(
            path="restart-check", mount_point="secret", raise_on_deleted_version=True
        )
        assert kept["data"]["data"] == {"written": "before the restart"}
    pod = replace_app_pod(sandbox)
    assert app_logs(sandbox, pod) == ([SECRET, "initContainers ready"], [SECRET, "going to sleep..."])


def test_vault_0_stays_ready_once_unsealed(guide_vault: tuple[RunningSandbox, Path]) -> None:
    """An unsealed, healthy Vault stays Ready: its readiness probe has nothing to fail on (a real kubelet
    would also need failureThreshold consecutive failures). Once a sandbox bug: its CA file, rewritten in
    place on every poll, was sometimes read half-written, so `vault` was unready for ~50 ms about once a
    second and vault-env attempts in that moment were refused (no ready endpoint)."""
    sandbox, _ = guide_vault
    seen: list[bool] = []
    for event in watch.Watch().stream(
        client.CoreV1Api(sandbox.api).list_namespaced_pod,
        namespace="vault",
        field_selector="metadata.name=vault-0",
        timeout_seconds=5,  # a window, not a wait: the old bug showed several times in it
    ):
        pod: Any = event["object"]  # type: ignore[index]
        seen.append(any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []))
    assert seen and all(seen), seen
