"""`meshbook lab`: a sandbox (started or reused) and JupyterLab on the runbooks, pointed at it.

The notebooks find the cluster through `MESHBOOK_KUBECONFIG` (as under `meshbook run`), set for the
JupyterLab server and so for every kernel it starts; `MESHBOOK_RUN_DIR` is removed, so the panel is
live and evidence stays in memory. JupyterLab listens on 127.0.0.1 with a token, without opening a
browser; once it answers, the URL with its token is printed on stdout. The sandbox keeps running when
JupyterLab stops (`meshbook sandbox down` stops it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

from meshbook.errors import ExitCode, NotAvailableError, ParameterError, UnreachableError, WaitTimeoutError
from meshbook.params import SandboxSpeed
from meshbook.runbook.environment import ENV_KUBECONFIG, ENV_RUN_DIR, ENV_RUN_ID

DEFAULT_PORT = 8888
HOST = "127.0.0.1"


@dataclass
class LabServer:
    """A running JupyterLab: its process, URL (with token) and where its log lines go."""

    process: subprocess.Popen[str]
    url: str
    port: int
    token: str

    def stop(self, timeout: float = 20.0) -> int:
        """Stop JupyterLab (SIGTERM, then SIGKILL after `timeout`); its exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def free_port(preferred: int | None = None) -> int:
    """`preferred` when nothing listens there, else a free port the system picks."""
    for candidate in ([preferred] if preferred else []) + [0]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((HOST, candidate))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise UnreachableError(f"no free TCP port on {HOST}")  # pragma: no cover - bind to 0 does not fail


def lab_environment(kubeconfig: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for JupyterLab and its kernels: the sandbox's kubeconfig, no run directory."""
    env = dict(os.environ if base is None else base)
    for key in (ENV_RUN_DIR, ENV_RUN_ID):
        env.pop(key, None)
    env[ENV_KUBECONFIG] = str(kubeconfig)
    return env


def jupyter_command(notebook_dir: Path, port: int, token: str, extra: Sequence[str] = ()) -> list[str]:
    """`jupyter lab` with this interpreter, so its kernels import this meshbook."""
    return [
        sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.ip={HOST}", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={notebook_dir}",
        *(["--allow-root"] if os.geteuid() == 0 else []), *extra,
    ]  # fmt: skip


def _forward(stream: IO[str], lines: queue.Queue[str | None], sink: IO[str], started: threading.Event) -> None:
    """Copy JupyterLab's log to `sink`; until it has started, also hand each line (then None at EOF) to `lines`."""
    for line in stream:
        sink.write(line)
        sink.flush()
        if not started.is_set():
            lines.put(line)
    lines.put(None)


def check_lab(notebook_dir: Path) -> None:
    """Raise before anything starts when JupyterLab is missing or the notebook directory is not one."""
    if importlib.util.find_spec("jupyterlab") is None:
        raise NotAvailableError("meshbook lab needs JupyterLab: pip install 'meshbook[lab]' (or jupyterlab)")
    if not notebook_dir.is_dir():
        raise ParameterError([f"--notebook-dir {notebook_dir}: not a directory"])


def start_lab(
    kubeconfig: Path,
    notebook_dir: Path,
    *,
    port: int | None = None,
    token: str | None = None,
    extra: Sequence[str] = (),
    timeout: float = 120.0,
    log: IO[str] | None = None,
) -> LabServer:
    """Start JupyterLab and return once it answers (its log line naming the URL); its log goes to `log`.

    `port` None: 8888, or a free port when that is taken; 0: any free port.
    """
    check_lab(notebook_dir)
    chosen = free_port(DEFAULT_PORT) if port is None else port or free_port()
    secret = token or secrets.token_hex(24)
    process = subprocess.Popen(
        jupyter_command(notebook_dir.resolve(), chosen, secret, extra),
        env=lab_environment(kubeconfig),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    assert process.stdout is not None
    started = threading.Event()
    threading.Thread(target=_forward, args=(process.stdout, lines, log or sys.stderr, started), daemon=True).start()
    deadline = time.monotonic() + timeout
    marker = f"{HOST}:{chosen}/"
    seen: list[str] = []
    while True:
        remaining = deadline - time.monotonic()
        try:
            line = lines.get(timeout=remaining) if remaining > 0 else ""
        except queue.Empty:
            line = ""
        tail = "".join(seen[-15:])
        if line == "":  # deadline passed with no sign of life
            process.kill()
            process.wait()
            raise WaitTimeoutError(f"JupyterLab did not answer within {timeout:.0f}s; its last lines:\n{tail}")
        if line is None:  # its output ended: it exited
            code = process.wait()
            raise UnreachableError(f"JupyterLab exited with code {code} while starting; its last lines:\n{tail}")
        seen.append(line)
        if marker in line:
            started.set()
            return LabServer(process, f"http://{HOST}:{chosen}/lab?token={secret}", chosen, secret)


BUILT_IN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def _namespaces_of_earlier_work(kubeconfig: Path) -> list[str]:
    """Namespaces beyond a new cluster's own, as `kubectl get namespaces` would list them."""
    from kubernetes import client

    from meshbook.kube.client import api_client

    api = api_client(kubeconfig)
    response: Any = client.CoreV1Api(api).list_namespace(_preload_content=False, _request_timeout=15)
    names = [str(item["metadata"]["name"]) for item in json.loads(response.data).get("items") or []]
    api.close()  # type: ignore[no-untyped-call]
    return sorted(n for n in names if n not in BUILT_IN_NAMESPACES)


def run_lab(
    state_dir: Path,
    *,
    speed: str = "instant",
    port: int | None = None,
    notebook_dir: Path | None = None,
    token: str | None = None,
    extra: Sequence[str] = (),
    out: Callable[[str], None] = print,
) -> int:
    """`meshbook lab`: start or reuse the sandbox, run JupyterLab until it ends or is interrupted."""
    from meshbook.runbook.catalogue import notebook_dir as default_notebooks
    from meshbook.sandbox import control

    notebooks = notebook_dir or default_notebooks()
    check_lab(notebooks)
    info, started = control.up(state_dir, SandboxSpeed(speed))
    out(f"sandbox {'started' if started else 'reused'}: {info.server} (state {info.state_dir})")
    if not started:
        earlier = _namespaces_of_earlier_work(info.kubeconfig)
        if earlier:
            out(
                f"  it holds objects from earlier work (namespaces {', '.join(earlier)}); "
                f"`meshbook sandbox reset --state {info.state_dir}` empties it"
            )
    server = start_lab(info.kubeconfig, notebooks, port=port, token=token, extra=extra)
    out(f"JupyterLab on {notebooks}: {server.url}")
    out(f"  notebooks use {ENV_KUBECONFIG}={info.kubeconfig}; stop with Ctrl-C (the sandbox keeps running)")
    sys.stdout.flush()

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        code = server.process.wait()
    except KeyboardInterrupt:
        server.stop()
        code = 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if server.process.poll() is None:
            server.stop()
    out(f"JupyterLab stopped; the sandbox still runs (`meshbook sandbox down --state {info.state_dir}`)")
    return ExitCode.OK if code in (0, -signal.SIGTERM) else ExitCode.UNREACHABLE
