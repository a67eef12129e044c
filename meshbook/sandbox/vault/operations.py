"""The Bank-Vaults side of the sandbox's Vault, over the real API: `unseal --init`, `configure`, health.

Every call goes through hvac with TLS verified against the CA the operator wrote into Secret `vault-tls`.
Unseal keys and the root token only pass between OpenBao and the keys store (Secret `vault-unseal-keys`
in the sandbox): they are never returned, logged or put into an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from meshbook.sandbox.vault.apiclient import (
    VaultHealth,
    VaultOperationError,
    read_health,
    vault_call,
    vault_client,
    wait_active,
)
from meshbook.sandbox.vault.configure import configure

__all__ = [
    "ROOT_TOKEN_KEY",
    "UNSEAL_KEY_NAMES",
    "KeysStore",
    "KeysStoreConflictError",
    "MemoryKeysStore",
    "UnsealResult",
    "VaultHealth",
    "VaultOperationError",
    "configure",
    "health",
    "init_and_unseal",
]

SECRET_SHARES = 5
SECRET_THRESHOLD = 3
UNSEAL_KEY_NAMES = tuple(f"vault-unseal-{i}" for i in range(SECRET_SHARES))
ROOT_TOKEN_KEY = "vault-root"


class KeysStoreConflictError(RuntimeError):
    """Vault is not initialised but the store already holds keys: refuse to overwrite them, as Bank-Vaults does."""


class KeysStore(Protocol):
    """Where unseal keys and the root token live: keys `vault-unseal-0..4` and `vault-root`."""

    def load(self) -> dict[str, str] | None: ...

    def save(self, keys: dict[str, str]) -> None: ...


class MemoryKeysStore:
    """A keys store in process memory, for tests and throwaway servers."""

    def __init__(self) -> None:
        self._keys: dict[str, str] | None = None

    def load(self) -> dict[str, str] | None:
        return dict(self._keys) if self._keys is not None else None

    def save(self, keys: dict[str, str]) -> None:
        self._keys = dict(keys)

    def __repr__(self) -> str:  # names only, never the keys
        return f"MemoryKeysStore(names={sorted(self._keys or {})})"


@dataclass(frozen=True)
class UnsealResult:
    """Status after `init_and_unseal`; no keys in here, by design."""

    initialized: bool
    sealed: bool
    cluster_id: str | None
    version: str
    initialized_now: bool
    unsealed_now: bool


def health(address: str, ca_file: Path | str, api: Any = None) -> VaultHealth:
    """sys/health as Bank-Vaults and the webhook see it: initialized, sealed, standby, version, cluster_id.

    `api`: a client of `address` to reuse (a poller's, whose keep-alive connection spares a TLS handshake).
    """
    return read_health(api if api is not None else vault_client(address, ca_file))


def _initialize(api: Any, keys_store: KeysStore) -> None:
    existing = keys_store.load() or {}
    present = sorted(name for name in (ROOT_TOKEN_KEY, *UNSEAL_KEY_NAMES) if name in existing)
    if present:
        raise KeysStoreConflictError(
            f"Vault is not initialised but the keys store already holds {', '.join(present)}; "
            "refusing to initialise and overwrite them (remove them to start over)"
        )
    with vault_call("initialize", "sys/init"):
        response = api.sys.initialize(SECRET_SHARES, SECRET_THRESHOLD)
    stored = {name: str(key) for name, key in zip(UNSEAL_KEY_NAMES, response["keys"], strict=True)}
    stored[ROOT_TOKEN_KEY] = str(response["root_token"])
    # Saved before unsealing: once Vault is initialised the keys must not exist only in memory.
    keys_store.save(stored)


def _unseal(api: Any, keys_store: KeysStore, threshold: int) -> None:
    stored = keys_store.load() or {}
    keys = [stored[name] for name in UNSEAL_KEY_NAMES if stored.get(name)]
    if len(keys) < threshold:
        raise VaultOperationError(
            "unseal", "sys/unseal", reason=f"keys store holds {len(keys)} unseal keys, {threshold} needed"
        )
    with vault_call("reset unseal progress", "sys/unseal"):
        api.sys.submit_unseal_key(reset=True)
    for key in keys:
        with vault_call("unseal", "sys/unseal"):
            response = api.sys.submit_unseal_key(key=key)
        if not response["sealed"]:
            return
        if int(response.get("progress", 0)) == 0:
            raise VaultOperationError("unseal", "sys/unseal", reason="a key was rejected (progress reset to 0)")
    raise VaultOperationError("unseal", "sys/unseal", reason="still sealed after every stored key")


def init_and_unseal(
    address: str,
    ca_file: Path | str,
    keys_store: KeysStore,
    active_timeout: float = 30.0,
    api: Any = None,
) -> UnsealResult:
    """What `bank-vaults unseal --init` does once: init (5 shares, threshold 3) if needed, then unseal.

    Returns once the node is active (raft leader), so `configure` can follow at once. A node found
    initialised and unsealed is answered from its seal status alone: the unseal container asks 20 times
    a second at instant speed, and only a node just unsealed has an election to wait for.
    `api`: as for `health`.
    """
    api = api if api is not None else vault_client(address, ca_file)
    with vault_call("read seal status", "sys/seal-status"):
        seal = api.sys.read_seal_status()
    initialized_now = unsealed_now = False
    if not seal["initialized"]:
        _initialize(api, keys_store)
        initialized_now = True
        with vault_call("read seal status", "sys/seal-status"):
            seal = api.sys.read_seal_status()
    if seal["sealed"]:
        _unseal(api, keys_store, int(seal.get("t") or SECRET_THRESHOLD))
        unsealed_now = True
    elif not initialized_now:
        return UnsealResult(
            initialized=True,
            sealed=False,
            cluster_id=seal.get("cluster_id") or None,
            version=str(seal.get("version", "")),
            initialized_now=False,
            unsealed_now=False,
        )
    status = wait_active(api, active_timeout)
    return UnsealResult(
        initialized=status["initialized"],
        sealed=status["sealed"],
        cluster_id=status["cluster_id"],
        version=status["version"],
        initialized_now=initialized_now,
        unsealed_now=unsealed_now,
    )
