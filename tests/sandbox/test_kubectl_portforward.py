"""`kubectl port-forward` as a user runs it, against a sandbox with a Vault: kubectl 1.33 tunnels SPDY in a
WebSocket (PortForwardWebsockets), kubectl 1.28 upgrades to SPDY/3.1 directly.

kubectl runs as a subprocess; its "Forwarding from 127.0.0.1:PORT" line gives the local port (always
`:REMOTE`, so a free local port), then plain sockets and urllib talk through it to the real OpenBao.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pytest
from kubernetes import client

from meshbook.sandbox import control
from tests.sandbox.conftest import KUBECTL, RunningSandbox, start_sandbox, wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl not installed"),
]

WAIT = 120.0  # generous bound on every wait; the happy path never gets near it
FORWARDING = re.compile(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)")
ALT_SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: vault-alt, namespace: vault}
spec:
  selector: {app.kubernetes.io/name: vault, vault_cr: vault}
  ports: [{name: api, port: 18200, targetPort: https-api-port}]
"""


def _meshbook(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "meshbook", *args], capture_output=True, text=True, timeout=WAIT, check=False
    )
    assert proc.returncode == 0, f"meshbook {' '.join(args)}: {proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module", params=["1.33", "1.28"], ids=["kubectl-1.33", "kubectl-1.28"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """A sandbox with Bank-Vaults' operator and a Vault CR's pod (a real OpenBao) in `vault`."""
    state = tmp_path_factory.mktemp("portforward")
    running = start_sandbox(state, kubernetes_version=request.param)
    try:
        running.kubectl("create", "namespace", "vault-system")
        _meshbook("sandbox", "install", "bank-vaults", "--state", str(state), "--pods-failure-policy", "Ignore")
        running.kubectl("rollout", "status", "deployment/vault-operator", "-n", "vault-system", "--timeout=120s")
        running.kubectl("create", "namespace", "vault")
        running.kubectl("apply", "-f", "-", input=_meshbook("manifests", "rbac"))
        running.kubectl("apply", "-f", "-", input=_meshbook("manifests", "vault-cr"))
        running.kubectl("apply", "-f", "-", input=ALT_SERVICE)
        _wait_for_vault_pod(running)
        yield running
    finally:
        running.api.close()
        control.down(state)


def _wait_for_vault_pod(cluster: RunningSandbox) -> None:
    """The operator creates vault-0 a moment after the CR (`kubectl wait --for=create` is 1.31+ only)."""
    core = client.CoreV1Api(cluster.api)
    wait_for(core.list_namespaced_pod, lambda p: p.metadata.name == "vault-0", timeout=int(WAIT), namespace="vault")
    cluster.kubectl("wait", "--for=condition=Ready", "pod/vault-0", "-n", "vault", "--timeout=120s")


class PortForward:
    """`kubectl port-forward ARGS` in the background; its output read by threads as it comes."""

    def __init__(self, cluster: RunningSandbox, *args: str) -> None:
        env = {
            **os.environ,
            "KUBECONFIG": str(cluster.kubeconfig),
            "KUBECACHEDIR": str(cluster.info.state_dir / "kubectl-cache"),
        }
        self.proc = subprocess.Popen(
            [KUBECTL, "port-forward", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.stdout: queue.Queue[str] = queue.Queue()
        self.stderr_lines: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout.put), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr_lines.append), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _pump(stream: Any, sink: Callable[[str], None]) -> None:
        for line in stream:
            sink(line)

    def local_port(self, remote: int) -> int:
        """The local port from kubectl's first "Forwarding from 127.0.0.1:PORT -> REMOTE" line."""
        deadline = time.monotonic() + WAIT
        while True:
            try:
                line = self.stdout.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is None and time.monotonic() < deadline:
                    continue
                self.exit_code()
                raise AssertionError(f"kubectl never said where it forwards; stderr: {self.stderr}") from None
            if match := FORWARDING.match(line):
                assert int(match.group(2)) == remote, line
                return int(match.group(1))

    def exit_code(self) -> int:
        code = self.proc.wait(WAIT)
        for reader in self._readers:
            reader.join(WAIT)
        return code

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.exit_code()


@pytest.fixture
def forwards() -> Iterator[Callable[..., PortForward]]:
    """Start kubectl port-forwards; every one is killed at the end of the test, whatever happened."""
    started: list[PortForward] = []

    def start(cluster: RunningSandbox, *args: str) -> PortForward:
        started.append(PortForward(cluster, *args))
        return started[-1]

    yield start
    for forward in started:
        forward.stop()


def _health(port: int) -> dict[str, Any]:
    """OpenBao's /v1/sys/health through the local port, like `curl -k` (the pod's cert names no localhost)."""
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/v1/sys/health", context=insecure, timeout=WAIT) as r:
        body: dict[str, Any] = json.loads(r.read())
    return body


def _bao_connections(cluster: RunningSandbox) -> set[tuple[str, int]]:
    """The sandbox server's established connections to its OpenBao, by local address."""
    server = psutil.Process(cluster.info.pid)
    bao = [child for child in server.children(recursive=True) if child.name() == "bao"]
    assert bao, "no OpenBao process under the sandbox server"
    listening = {c.laddr.port for b in bao for c in b.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    return {
        (c.laddr.ip, c.laddr.port)
        for c in server.net_connections("tcp")
        if c.status == psutil.CONN_ESTABLISHED and c.raddr and c.raddr.port in listening
    }


def _eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"never happened within {WAIT}s: {what}"
        time.sleep(0.2)


# -- refusals first -------------------------------------------------------------------------------------


def test_a_missing_pod_is_not_found(cluster: RunningSandbox) -> None:
    proc = cluster.kubectl("port-forward", "-n", "vault", "pod/nope", ":8200", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip() == 'Error from server (NotFound): pods "nope" not found'


def test_a_port_nothing_listens_on_fails_as_on_a_cluster(
    cluster: RunningSandbox, forwards: Callable[..., PortForward]
) -> None:
    forward = forwards(cluster, "-n", "vault", "pod/vault-0", ":8201")
    port = forward.local_port(8201)
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(b"hello")
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(1) == b""  # kubectl closes the local connection
    assert forward.exit_code() == 1  # and gives up on the pod, as against a cluster
    stderr = forward.stderr.replace('\\"', '"')  # kubectl 1.33 logs it as a quoted klog value
    assert "an error occurred forwarding" in stderr and " -> 8201: error forwarding port 8201 to pod " in stderr
    assert ', uid : failed to execute portforward in network namespace "/var/run/netns/cni-' in stderr
    assert "IPv4: dial tcp4 127.0.0.1:8201: connect: connection refused" in stderr
    assert "IPv6 dial tcp6 [::1]:8201: connect: connection refused" in stderr
    assert stderr.rstrip().endswith("error: lost connection to pod")


# -- forwarding ------------------------------------------------------------------------------------------


def test_a_pod_port_reaches_openbao(cluster: RunningSandbox, forwards: Callable[..., PortForward]) -> None:
    forward = forwards(cluster, "-n", "vault", "pod/vault-0", ":8200")
    health = _health(forward.local_port(8200))
    assert (health["initialized"], health["sealed"]) == (True, False)


def test_svc_vault_forwards_many_concurrent_connections(
    cluster: RunningSandbox, forwards: Callable[..., PortForward]
) -> None:
    forward = forwards(cluster, "-n", "vault", "svc/vault", ":8200")
    port = forward.local_port(8200)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: _health(port), range(16)))
    assert all(r["initialized"] and not r["sealed"] for r in results)
    insecure = ssl._create_unverified_context()
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=WAIT, context=insecure)
    try:
        for _ in range(3):  # one forwarded connection, several requests (keep-alive)
            conn.request("POST", "/v1/sys/health", body=b"x" * 300_000)  # beyond every SPDY window
            response = conn.getresponse()
            response.read()
            assert response.status == 405
    finally:
        conn.close()
    assert forward.proc.poll() is None  # still forwarding


def test_kubectl_resolves_a_services_named_target_port(
    cluster: RunningSandbox, forwards: Callable[..., PortForward]
) -> None:
    forward = forwards(cluster, "-n", "vault", "svc/vault-alt", ":18200")
    port = forward.local_port(8200)  # service port 18200 -> targetPort https-api-port -> container port 8200
    assert _health(port)["initialized"] is True


def test_kubectl_exiting_closes_every_pod_connection(
    cluster: RunningSandbox, forwards: Callable[..., PortForward]
) -> None:
    before = _bao_connections(cluster)  # the sandbox's own (the operator's, probes): not ours to judge
    forward = forwards(cluster, "-n", "vault", "svc/vault", ":8200")
    port = forward.local_port(8200)
    insecure = ssl._create_unverified_context()
    held = [http.client.HTTPSConnection("127.0.0.1", port, timeout=WAIT, context=insecure) for _ in range(3)]
    for conn in held:  # each leaves an open, idle connection to OpenBao behind the forward
        conn.request("GET", "/v1/sys/health")
        conn.getresponse().read()
    _eventually(lambda: len(_bao_connections(cluster) - before) >= 3, "three forwarded connections to OpenBao")
    forwarded = _bao_connections(cluster) - before
    forward.stop()  # kubectl killed while its connections are open
    _eventually(lambda: not forwarded & _bao_connections(cluster), "the sandbox closing the forwarded connections")
    for conn in held:
        conn.close()
