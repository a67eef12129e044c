"""OpenBao's first start until it serves: spawned on a fresh data directory, listening, initialised (5 shares,
threshold 3), unsealed and the raft leader, the way the sandbox's vault container and `bank-vaults unseal`
do it (`OpenBaoServer`, `init_and_unseal`, the default Vault CR's config). Certificates are issued before
the clock starts. Goal (issue 15): under 1 s.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.figures import Figure
from meshbook.manifests import render
from meshbook.params import load_params
from meshbook.sandbox.pki import issue_ca, issue_server_cert
from meshbook.sandbox.vault.openbao import OpenBaoServer
from meshbook.sandbox.vault.operations import MemoryKeysStore, init_and_unseal
from meshbook.sandbox.vault.server_config import server_settings

REPEATS = 3


def _vault_cr_settings() -> dict[str, Any]:
    """What the default Vault CR's `spec.config` gives OpenBao's config file, as the sandbox applies it."""
    cr = next(m for m in render("vault-cr", load_params()) if m["kind"] == "Vault")
    return server_settings(cr["spec"].get("config")).applied


def _first_start(directory: Path) -> tuple[float, float, float]:
    """One fresh server: seconds until ready, until listening, and from listening until ready."""
    ca_pem, ca_key = issue_ca("vault-ca")
    cert_pem, key_pem = issue_server_cert(ca_pem, ca_key, "vault", ["vault", "vault.vault.svc"], ["127.0.0.1"])
    ca_file = directory / "ca.crt"
    ca_file.write_bytes(ca_pem)
    settings = _vault_cr_settings()
    server = OpenBaoServer(log_level=str(settings.pop("log_level", "info")), settings=settings)
    try:
        started = time.monotonic()
        server.start(directory / "vault-0", cert_pem, key_pem)
        server.wait_listening(timeout=60)
        listening = time.monotonic() - started
        init_and_unseal(server.address, ca_file, MemoryKeysStore(), active_timeout=60)
        ready = time.monotonic() - started
    finally:
        server.stop()
    return ready, listening, ready - listening


def measure() -> list[Figure]:
    ready: list[float] = []
    listening: list[float] = []
    unseal: list[float] = []
    for _ in range(REPEATS):
        with tempfile.TemporaryDirectory(prefix="meshbook-bench-bao-") as tmp:
            total, up, rest = _first_start(Path(tmp))
        ready.append(total)
        listening.append(up)
        unseal.append(rest)
        print(f"  ready {total:.2f} s (listening {up:.2f} s, init + unseal + active {rest:.2f} s)", flush=True)
    return [
        Figure.of("openbao_ready", ready, "s"),
        Figure.of("openbao_listening", listening, "s", "OpenBao: spawn until sys/health answers"),
        Figure.of("openbao_init_unseal", unseal, "s", "OpenBao: init + unseal until raft leader"),
    ]
