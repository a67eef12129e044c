"""Sandbox API server: create, get, list-as-Table and watch-delivery latency, and memory with 10,000 objects.

Starts a real sandbox process in a temporary state directory at speed `instant` and talks to it over
HTTPS with the standard library's `http.client`: keep-alive connections, request bodies encoded before
the clock starts, responses read in full but not parsed inside the timed region, so the client adds
little (the `GET /healthz` round trip below is the floor every figure includes). Goals (issue 3, in
`goals.py`): list of 1,000 pods as Table p50 < 50 ms, create p50 < 5 ms, watch delivery p99 < 20 ms,
resident memory with 10,000 objects < 300 MB.
"""

from __future__ import annotations

import base64
import http.client
import json
import queue
import sqlite3
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import yaml

from benchmarks._util import cpu_seconds, load_line, percentile, proc_status_kib, rss_mb
from benchmarks.figures import Figure
from meshbook.params import SandboxSpeed
from meshbook.sandbox import control

N_FLOOR = 200
N_CONFIGMAPS = 1_000
N_GETS = 1_000
N_PODS = 1_000
N_TABLE_LISTS = 200
N_JSON_LISTS = 100
N_WATCH = 200
N_OBJECTS = 10_000  # configmaps + pods created by this benchmark for the memory figure
FILL_THREADS = 4

TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach the server, from its kubeconfig."""

    host: str
    port: int
    token: str
    context: ssl.SSLContext


def endpoint_from_kubeconfig(path: Path) -> Endpoint:
    """Server address, CA and bearer token of the kubeconfig's current context."""
    config = yaml.safe_load(path.read_text())
    context = next(c["context"] for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
    ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
    url = urlsplit(cluster["server"])
    assert url.hostname is not None and url.port is not None
    return Endpoint(url.hostname, url.port, user["token"], ssl.create_default_context(cadata=ca))


class Client:
    """One keep-alive HTTPS connection; header dicts are built once."""

    def __init__(self, ep: Endpoint) -> None:
        self.ep = ep
        self.conn = http.client.HTTPSConnection(ep.host, ep.port, context=ep.context)
        base = {"Authorization": f"Bearer {ep.token}", "User-Agent": "meshbook-bench/1"}
        self.json_headers = {**base, "Accept": "application/json"}
        self.post_headers = {**self.json_headers, "Content-Type": "application/json"}
        self.table_headers = {**base, "Accept": TABLE_ACCEPT}
        self.cpu = 0.0  # this thread's CPU seconds spent inside `timed` calls: the client's own overhead

    def call(self, method: str, path: str, body: bytes | None = None, accept_table: bool = False) -> bytes:
        """One request; raises on a non-2xx answer."""
        headers = self.table_headers if accept_table else self.post_headers if body else self.json_headers
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path} -> {response.status}: {data[:300]!r}")
        return data

    def timed(self, method: str, path: str, body: bytes | None = None, accept_table: bool = False) -> float:
        """Seconds for one request, response read in full."""
        cpu = time.thread_time()
        start = time.perf_counter()
        self.call(method, path, body, accept_table)
        took = time.perf_counter() - start
        self.cpu += time.thread_time() - cpu
        return took

    def close(self) -> None:
        self.conn.close()


def configmap(name: str, annotations: dict[str, str] | None = None) -> bytes:
    meta: dict[str, Any] = {"name": name, "labels": {"app": "bench"}}
    if annotations:
        meta["annotations"] = annotations
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"key": f"value of {name}"}}
    return json.dumps(body, separators=(",", ":")).encode()


def pod(name: str) -> bytes:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"]}]},
    }
    return json.dumps(body, separators=(",", ":")).encode()


def namespace(name: str) -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}).encode()


def ms(samples: list[float], pct: float) -> float:
    return percentile(samples, pct) * 1000


def figure_line(label: str, value: float, unit: str) -> str:
    """One figure as printed while the benchmark runs."""
    return f"{label:<52} {value:9.2f} {unit}"


class Meter:
    """CPU spent per request by the client (this thread) and by the server process, over one phase."""

    def __init__(self, client: Client, pid: int) -> None:
        self.client = client
        self.pid = pid
        self.server_start = 0.0
        self.reset()

    def reset(self) -> None:
        self.client.cpu = 0.0
        self.server_start = cpu_seconds(self.pid)

    def print_per_request(self, count: int) -> None:
        server = cpu_seconds(self.pid) - self.server_start
        print(figure_line("  client CPU per request (mean)", self.client.cpu / count * 1000, "ms"))
        print(figure_line("  server CPU per request (mean)", server / count * 1000, "ms"), flush=True)


def report(label: str, samples: list[float], meter: Meter | None = None) -> tuple[float, float]:
    """Print p50 and p99 of `samples` (seconds) in ms, with `meter` CPU per request; returns (p50, p99)."""
    p50, p99 = ms(samples, 50), ms(samples, 99)
    for pct, value in ((50, p50), (99, p99)):
        print(figure_line(f"{label} p{pct} (n={len(samples)})", value, "ms"), flush=True)
    if meter is not None:
        meter.print_per_request(len(samples))
    return p50, p99


def count_running(client: Client, ns: str) -> int:
    items = json.loads(client.call("GET", f"/api/v1/namespaces/{ns}/pods"))["items"]
    return sum(1 for p in items if p.get("status", {}).get("phase") == "Running")


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False


def watch_reader(ep: Endpoint, path: str, out: queue.Queue[tuple[float, bytes]], ready: threading.Event) -> None:
    """Read a chunked watch stream line by line, stamping each line with its arrival time."""
    client = Client(ep)
    try:
        client.conn.request("GET", path, headers=client.json_headers)
        response = client.conn.getresponse()
        ready.set()
        while line := response.readline():
            out.put((time.perf_counter(), line))
    except OSError:
        pass
    finally:
        ready.set()
        client.close()


def bench_watch(ep: Endpoint, client: Client, ns: str) -> tuple[list[float], threading.Thread]:
    """Create configmaps one at a time while a watch is open; latency = arrival - send time."""
    rv = json.loads(client.call("GET", f"/api/v1/namespaces/{ns}/configmaps"))["metadata"]["resourceVersion"]
    events: queue.Queue[tuple[float, bytes]] = queue.Queue()
    ready = threading.Event()
    path = f"/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion={rv}&timeoutSeconds=300"
    reader = threading.Thread(target=watch_reader, args=(ep, path, events, ready), daemon=True)
    reader.start()
    ready.wait(10)
    time.sleep(0.2)  # let the server register the watcher before the first create
    latencies: list[float] = []
    for i in range(N_WATCH):
        sent = time.perf_counter()
        client.call("POST", f"/api/v1/namespaces/{ns}/configmaps", configmap(f"w-{i:04d}", {"sent": repr(sent)}))
        while True:  # skip anything but this configmap's ADDED (there should be nothing else)
            arrived, line = events.get(timeout=10)
            event = json.loads(line)
            annotations = event["object"]["metadata"].get("annotations") or {}
            if event["type"] == "ADDED" and annotations.get("sent") == repr(sent):
                break
        latencies.append(arrived - sent)
    return latencies, reader


def fill(ep: Endpoint, ns: str, count: int) -> float:
    """Create `count` configmaps over FILL_THREADS connections; returns seconds taken."""

    def worker(index: int) -> None:
        client = Client(ep)
        try:
            for i in range(index, count, FILL_THREADS):
                client.call("POST", f"/api/v1/namespaces/{ns}/configmaps", configmap(f"fill-{i:05d}"))
        finally:
            client.close()

    start = time.perf_counter()
    with ThreadPoolExecutor(FILL_THREADS) as pool:
        list(pool.map(worker, range(FILL_THREADS)))
    return time.perf_counter() - start


def stored_counts(state_dir: Path) -> dict[str, int]:
    """Objects per resource type in the server's SQLite file (read-only)."""
    db = sqlite3.connect(f"file:{state_dir / 'store.sqlite'}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT rt, count(*) FROM objects GROUP BY rt ORDER BY 2 DESC").fetchall())
    finally:
        db.close()


def run(state_dir: Path) -> list[Figure]:
    """The figures of one fresh sandbox; prints each as it is measured."""
    figures: list[Figure] = []
    print(load_line() + " at start", flush=True)
    t0 = time.perf_counter()
    info, _ = control.up(state_dir, SandboxSpeed.INSTANT, "1.33")
    up_ms = (time.perf_counter() - t0) * 1000
    print(figure_line("sandbox start (up() until it answers)", up_ms, "ms"))
    figures.append(Figure.of("sandbox_start", [up_ms], "ms", "sandbox: start (up() until it answers)"))
    pid = info.pid
    ep = endpoint_from_kubeconfig(info.kubeconfig)
    client = Client(ep)
    reader: threading.Thread | None = None
    try:
        idle = rss_mb(pid)
        print(figure_line("server RSS idle", idle, "MB"))
        for ns in ("bench-cm", "bench-pods", "bench-watch", "bench-fill"):
            client.call("POST", "/api/v1/namespaces", namespace(ns))

        meter = Meter(client, pid)
        floor = [client.timed("GET", "/healthz") for _ in range(N_FLOOR)]
        report("round-trip floor GET /healthz", floor, meter=meter)

        bodies = [configmap(f"cm-{i:04d}") for i in range(N_CONFIGMAPS)]
        meter.reset()
        creates = [client.timed("POST", "/api/v1/namespaces/bench-cm/configmaps", b) for b in bodies]
        p50, _ = report("create ConfigMap", creates, meter=meter)
        figures.append(Figure.of("sandbox_create_p50", [p50], "ms", note=f"n={len(creates)}"))

        meter.reset()
        gets = [client.timed("GET", "/api/v1/namespaces/bench-cm/configmaps/cm-0500") for _ in range(N_GETS)]
        p50, _ = report("get ConfigMap", gets, meter=meter)
        figures.append(Figure.of("sandbox_get_p50", [p50], "ms", "sandbox: get ConfigMap p50"))

        print("pods: the kubelet stand-in schedules and starts each pod while later creates are timed")
        bodies = [pod(f"pod-{i:04d}") for i in range(N_PODS)]
        start = time.perf_counter()
        meter.reset()
        pod_creates = [client.timed("POST", "/api/v1/namespaces/bench-pods/pods", b) for b in bodies]
        p50, _ = report("create Pod (kubelet busy meanwhile)", pod_creates, meter=meter)
        figures.append(Figure.of("sandbox_create_pod_p50", [p50], "ms", "sandbox: create Pod p50 (kubelet busy)"))
        all_running = wait_until(lambda: count_running(client, "bench-pods") == N_PODS, timeout=90)
        print(
            figure_line(
                f"1,000 pods created and {'all Running' if all_running else 'NOT all Running'} after",
                time.perf_counter() - start,
                "s",
            )
        )
        time.sleep(1.0)  # let the kubelet stand-in settle before timing reads
        print(figure_line("server RSS with 1,000 cm + 1,000 pods", rss_mb(pid), "MB"))

        pods_path = "/api/v1/namespaces/bench-pods/pods"
        table_bytes = len(client.call("GET", pods_path, accept_table=True))
        meter.reset()
        tables = [client.timed("GET", pods_path, accept_table=True) for _ in range(N_TABLE_LISTS)]
        p50, _ = report(f"list 1,000 pods as Table ({table_bytes // 1024} KiB)", tables, meter=meter)
        figures.append(Figure.of("sandbox_table_p50", [p50], "ms", note=f"n={len(tables)}"))
        first_page = json.loads(client.call("GET", pods_path + "?limit=500", accept_table=True))
        second = f"{pods_path}?limit=500&continue={quote(first_page['metadata']['continue'])}"
        paged = [
            client.timed("GET", pods_path + "?limit=500", accept_table=True)
            + client.timed("GET", second, accept_table=True)
            for _ in range(N_TABLE_LISTS // 2)
        ]
        report("  same, kubectl-style 2 x limit=500", paged)
        json_bytes = len(client.call("GET", pods_path))
        meter.reset()
        plain = [client.timed("GET", pods_path) for _ in range(N_JSON_LISTS)]
        p50, _ = report(f"list 1,000 pods as JSON ({json_bytes // 1024} KiB)", plain, meter=meter)
        figures.append(Figure.of("sandbox_json_list_p50", [p50], "ms", "sandbox: list 1,000 pods as JSON p50"))

        watch_latencies, reader = bench_watch(ep, client, "bench-watch")
        _, p99 = report("watch delivery", watch_latencies)
        figures.append(Figure.of("sandbox_watch_p99", [p99], "ms", note=f"n={len(watch_latencies)}"))

        remaining = N_OBJECTS - N_CONFIGMAPS - N_PODS - N_WATCH
        took = fill(ep, "bench-fill", remaining)
        print(figure_line(f"fill {remaining:,} cm over {FILL_THREADS} connections", took, "s"))
        print(figure_line("  fill throughput", remaining / took, "/s"))
        time.sleep(0.5)
        counts = stored_counts(state_dir)
        total = sum(counts.values())
        print(f"stored objects: {total:,} ({', '.join(f'{k} {v:,}' for k, v in counts.items())})")
        full = rss_mb(pid)
        label = f"server RSS, {N_OBJECTS:,} bench objects ({total:,} stored)"
        print(figure_line(label, full, "MB"))
        figures.append(Figure.of("sandbox_rss_10k", [full], "MB", note=f"{total:,} objects stored"))
        print(figure_line("  per stored object above idle", (full - idle) * 1024 / total, "KiB"))
        print(figure_line("  server peak RSS (VmHWM)", proc_status_kib(pid, "VmHWM") / 1024, "MB"))
    finally:
        client.close()
        control.down(state_dir)
        if reader is not None:
            reader.join(timeout=5)
    print(figure_line("whole sandbox benchmark", time.perf_counter() - t0, "s"))
    print(load_line() + " at end (other processes compete with the server for these CPUs)")
    return figures


def measure() -> list[Figure]:
    """Run the sandbox benchmark against a fresh server in a temporary state directory."""
    print(
        "client: stdlib http.client over HTTPS, keep-alive, TCP_NODELAY; figures include one round trip",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="meshbook-bench-") as tmp:
        return run(Path(tmp) / "sandbox")
