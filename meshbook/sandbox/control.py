"""Start, stop and find the sandbox server process; write its kubeconfig.

The server runs detached from the starting process (`meshbook sandbox up` returns at once once it
answers). Its state directory holds everything: SQLite store, token, CA, kubeconfig, log, server.json.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from meshbook.errors import MeshbookError, UnreachableError, WaitTimeoutError
from meshbook.params import SandboxSpeed
from meshbook.sandbox.pki import ensure_serving_pki

CONTEXT = "meshbook-sandbox"
STATE_FILE = "server.json"  # written by the server once it answers: pid, host, port, speed


def default_state_dir() -> Path:
    """`$XDG_STATE_HOME/meshbook/sandbox`, else `~/.local/state/meshbook/sandbox`."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "meshbook" / "sandbox"


@dataclass(frozen=True)
class SandboxInfo:
    state_dir: Path
    pid: int
    host: str
    port: int
    speed: str

    @property
    def server(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running(state_dir: Path) -> SandboxInfo | None:
    """The sandbox serving this state directory, if its process is alive."""
    path = state_dir / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not _alive(int(data["pid"])):
        return None
    return SandboxInfo(state_dir, int(data["pid"]), data["host"], int(data["port"]), data.get("speed", ""))


def _token(state_dir: Path) -> str:
    path = state_dir / "token"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def write_kubeconfig(info: SandboxInfo) -> Path:
    ca = (info.state_dir / "ca.crt").read_bytes()
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CONTEXT,
                "cluster": {
                    "server": info.server,
                    "certificate-authority-data": base64.b64encode(ca).decode(),
                },
            }
        ],
        "users": [{"name": CONTEXT, "user": {"token": _token(info.state_dir)}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": "default"}}],
        "current-context": CONTEXT,
        "preferences": {},
    }
    path = info.kubeconfig
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(config, handle, sort_keys=False)
    tmp.replace(path)
    return path


def up(
    state_dir: Path, speed: SandboxSpeed = SandboxSpeed.INSTANT, kubernetes_version: str = "1.33", timeout: float = 60.0
) -> tuple[SandboxInfo, bool]:
    """Start the sandbox (or find it running); returns its info and whether it was started now."""
    state_dir = state_dir.expanduser().resolve()
    existing = running(state_dir)
    if existing is not None:
        write_kubeconfig(existing)
        return existing, False
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir.chmod(0o700)
    _token(state_dir)
    ensure_serving_pki(state_dir)
    read_fd, write_fd = os.pipe()
    log = open(state_dir / "server.log", "ab")  # noqa: SIM115 - handed to the child process
    cmd = [
        sys.executable, "-m", "meshbook.sandbox.server", "--state", str(state_dir), "--speed", str(speed),
        "--kubernetes-version", kubernetes_version, "--ready-fd", str(write_fd),
    ]  # fmt: skip
    process = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(write_fd,), start_new_session=True
    )
    os.close(write_fd)
    log.close()
    line = _read_line(read_fd, timeout)
    if not line:
        code = process.poll()
        tail = _log_tail(state_dir / "server.log")
        if code is None:
            process.kill()
            raise WaitTimeoutError(
                f"sandbox in {state_dir} did not answer within {timeout:.0f}s; last lines of server.log:\n{tail}"
            )
        raise UnreachableError(
            f"sandbox in {state_dir} exited with code {code} while starting; server.log says:\n{tail}"
        )
    data = json.loads(line)
    info = SandboxInfo(state_dir, int(data["pid"]), data["host"], int(data["port"]), data["speed"])
    write_kubeconfig(info)
    return info, True


def _read_line(fd: int, timeout: float) -> str:
    import select

    deadline = time.monotonic() + timeout
    chunks = b""
    try:
        while b"\n" not in chunks:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return ""
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return ""
            chunk = os.read(fd, 4096)
            if not chunk:
                return ""
            chunks += chunk
    finally:
        os.close(fd)
    return chunks.decode().splitlines()[0]


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no server.log)"


def down(state_dir: Path, timeout: float = 30.0) -> bool:
    """Stop the sandbox; its state stays on disk. Returns False when it was not running."""
    info = running(state_dir.expanduser().resolve())
    if info is None:
        return False
    os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(info.pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(info.pid, os.WNOHANG)
        if time.monotonic() > deadline:
            os.kill(info.pid, signal.SIGKILL)
            raise MeshbookError(f"sandbox pid {info.pid} did not stop within {timeout:.0f}s; it was killed")
        time.sleep(0.05)
    return True
