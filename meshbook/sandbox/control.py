"""Start, stop and find the sandbox server process; write its kubeconfig.

The server runs detached from the starting process (`meshbook sandbox up` returns at once once it
answers). Its state directory holds everything: SQLite store, token, CA, kubeconfig, log, server.json.

A sandbox started with `owned=True` (what `meshbook run` does) holds a lease on its starter: the read
end of a pipe whose only write end stays in the starting process. When that process ends, however it
ends (SIGKILL included), the kernel closes the write end, the server reads end-of-file and shuts down,
and OpenBao with it. No heartbeat, no polling: the pipe is the owner's life.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from meshbook.errors import MeshbookError, UnreachableError, WaitTimeoutError
from meshbook.param_enums import SandboxSpeed
from meshbook.sandbox.pki import ensure_serving_pki

CONTEXT = "meshbook-sandbox"
_LEASES: dict[Path, int] = {}  # state dir -> write end of the lease pipe of a sandbox this process owns
STATE_FILE = "server.json"  # written by the server once it answers: pid, host, port, speed
EPHEMERAL_MARKER = "EPHEMERAL"  # in the state of a sandbox that deletes it when it stops: {"owner_pid": N}


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


def _exited(pid: int, wait: float) -> bool:
    """Whether `pid` has exited, waiting up to `wait` seconds: its pidfd becomes readable when it exits,
    so the stop is seen at once rather than at the next tick of a polling interval."""
    import select

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except OSError:  # no pidfd (an old kernel): a short poll instead
        time.sleep(min(wait, 0.05))
        return False
    try:
        return bool(select.select([fd], [], [], wait)[0])
    finally:
        os.close(fd)


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


def runs_state_root() -> Path:
    """Where `meshbook run` keeps the state of the sandboxes it starts (one folder per run)."""
    return default_state_dir().parent / "runs"


def remove_orphaned_state() -> list[Path]:
    """Delete the state (keys included) of ephemeral sandboxes whose server and owner are both gone, e.g.
    a server that was SIGKILLed before it could delete its own; returns what was removed."""
    removed: list[Path] = []
    if not runs_state_root().is_dir():
        return removed
    for state in runs_state_root().iterdir():
        marker = state / EPHEMERAL_MARKER
        try:
            owner = int(json.loads(marker.read_text())["owner_pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if running(state) is None and not _alive(owner):
            shutil.rmtree(state, ignore_errors=True)
            removed.append(state)
    return removed


def all_running() -> list[SandboxInfo]:
    """Every running sandbox of this user: the default one and those runs started (and kept)."""
    candidates = [default_state_dir()]
    if runs_state_root().is_dir():
        candidates += sorted(p for p in runs_state_root().iterdir() if p.is_dir())
    return [info for info in (running(path) for path in candidates) if info is not None]


def started_at(info: SandboxInfo) -> float:
    """When the server wrote its state file (it does once it answers): the sandbox's start time."""
    return (info.state_dir / STATE_FILE).stat().st_mtime


def from_kubeconfig(kubeconfig: str | None) -> Path | None:
    """The state directory of the sandbox a kubeconfig points at, when it is a meshbook sandbox's own."""
    if not kubeconfig:
        return None
    path = Path(kubeconfig.split(os.pathsep)[0]).expanduser().resolve()
    state = path.parent
    return state if path.name == "kubeconfig" and running(state) is not None else None


# Files a reset keeps: the user's token and the serving CA (so kubeconfigs and trust stay valid).
KEPT_ON_RESET = ("token", "ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "kubeconfig")


def reset(state_dir: Path) -> SandboxInfo:
    """Return a sandbox to empty: stop it, delete every object, OpenBao's data and keys, and start it again
    with the same speed. The token and serving CA stay, so existing kubeconfigs keep working."""
    state_dir = state_dir.expanduser().resolve()
    info = running(state_dir)
    if info is None:
        raise UnreachableError(f"no sandbox running for {state_dir}; start one with `meshbook sandbox up`")
    version = json.loads((state_dir / STATE_FILE).read_text()).get("kubernetes_version", "1.33")
    down(state_dir, keep_state=False)
    fresh, _ = up(state_dir, SandboxSpeed(info.speed) if info.speed else SandboxSpeed.INSTANT, version)
    return fresh


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
    state_dir: Path,
    speed: SandboxSpeed = SandboxSpeed.INSTANT,
    kubernetes_version: str = "1.33",
    timeout: float = 60.0,
    *,
    owned: bool = False,
    ephemeral: bool = False,
) -> tuple[SandboxInfo, bool]:
    """Start the sandbox (or find it running); returns its info and whether it was started now.

    `owned`: the new server ends when this process ends (see the module docstring); a sandbox that was
    already running is reused as it is and never owned. `ephemeral`: the server deletes its state
    directory (store, CA and serving keys, OpenBao's data, unseal keys and root token) when it stops.
    """
    state_dir = state_dir.expanduser().resolve()
    existing = running(state_dir)
    if existing is not None:
        write_kubeconfig(existing)
        return existing, False
    remove_orphaned_state()
    state_dir.mkdir(parents=True, exist_ok=True)
    state_dir.chmod(0o700)
    if ephemeral:
        (state_dir / EPHEMERAL_MARKER).write_text(json.dumps({"owner_pid": os.getpid()}) + "\n")
    _token(state_dir)
    ensure_serving_pki(state_dir)
    read_fd, write_fd = os.pipe()
    pass_fds = [write_fd]
    log = open(state_dir / "server.log", "ab")  # noqa: SIM115 - handed to the child process
    # -P and cwd: a folder named `meshbook` in the caller's working directory must not shadow the package.
    cmd = [
        sys.executable, "-P", "-m", "meshbook.sandbox.server", "--state", str(state_dir), "--speed", str(speed),
        "--kubernetes-version", kubernetes_version, "--ready-fd", str(write_fd),
    ]  # fmt: skip
    lease_read = lease_write = -1
    if owned:
        lease_read, lease_write = os.pipe()  # both ends close-on-exec: kernels and tools never inherit them
        pass_fds.append(lease_read)
        cmd += ["--lease-fd", str(lease_read)]
    if ephemeral:
        cmd.append("--ephemeral")
    process = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        pass_fds=pass_fds,
        start_new_session=True,
        cwd=state_dir,
    )
    os.close(write_fd)
    if owned:
        os.close(lease_read)
        _LEASES[state_dir] = lease_write
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


def release(state_dir: Path) -> None:
    """Let go of an owned sandbox's lease: the server sees end-of-file and shuts down by itself."""
    lease = _LEASES.pop(state_dir.expanduser().resolve(), None)
    if lease is not None:
        os.close(lease)


def remove_cluster_data(state_dir: Path) -> None:
    """Delete every object, OpenBao's data, the unseal keys and the root token of a stopped sandbox; keep
    what `KEPT_ON_RESET` names (the user's token, the serving CA, the kubeconfig)."""
    if not state_dir.is_dir():
        return
    for entry in state_dir.iterdir():
        if entry.name in KEPT_ON_RESET:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def down(state_dir: Path, timeout: float = 30.0, *, keep_state: bool = True) -> bool:
    """Stop the sandbox. With `keep_state` its objects and Vault data (unseal keys and root token
    included) stay on disk for the next `up`; without, they are deleted once the server has stopped.
    Returns False when it was not running."""
    state_dir = state_dir.expanduser().resolve()
    info = running(state_dir)
    if info is None:
        release(state_dir)
        if not keep_state:
            remove_cluster_data(state_dir)
        return False
    os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(info.pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(info.pid, os.WNOHANG)
        if not _alive(info.pid):
            break
        if time.monotonic() > deadline:
            os.kill(info.pid, signal.SIGKILL)
            release(state_dir)
            raise MeshbookError(f"sandbox pid {info.pid} did not stop within {timeout:.0f}s; it was killed")
        if _exited(info.pid, min(1.0, max(deadline - time.monotonic(), 0.0))):
            time.sleep(0.05)  # a zombie of another parent (`sandbox down` of a run's sandbox): until it is reaped
    release(state_dir)
    if not keep_state:
        remove_cluster_data(state_dir)
    return True
