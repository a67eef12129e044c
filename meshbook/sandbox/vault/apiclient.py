"""The Vault API client the Bank-Vaults stand-ins share: hvac with verified TLS, and payload-free errors.

Errors name the operation, the API path and the HTTP status, nothing else: Vault's messages can echo
request data, and these calls carry unseal keys, tokens and secret values.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypedDict

import hvac
import hvac.exceptions
import requests

from meshbook.sandbox.vault.openbao import HEALTH_CODES

REQUEST_TIMEOUT = 30

_HVAC_STATUS: dict[type[hvac.exceptions.VaultError], int] = {
    hvac.exceptions.InvalidRequest: 400,
    hvac.exceptions.Unauthorized: 401,
    hvac.exceptions.Forbidden: 403,
    hvac.exceptions.InvalidPath: 404,
    hvac.exceptions.PreconditionFailed: 412,
    hvac.exceptions.RateLimitExceeded: 429,
    hvac.exceptions.InternalServerError: 500,
    hvac.exceptions.VaultNotInitialized: 501,
    hvac.exceptions.BadGateway: 502,
    hvac.exceptions.VaultDown: 503,
}


class VaultOperationError(RuntimeError):
    """A Vault API call failed. Carries the operation, path and HTTP status only, never a payload."""

    def __init__(self, operation: str, path: str, status: int | None = None, reason: str = "") -> None:
        self.operation = operation
        self.path = path
        self.status = status
        self.reason = reason or (f"HTTP {status}" if status is not None else "failed")
        super().__init__(f"{operation} ({path}): {self.reason}")


class VaultHealth(TypedDict):
    initialized: bool
    sealed: bool
    standby: bool
    version: str
    cluster_id: str | None


@contextmanager
def vault_call(operation: str, path: str) -> Iterator[None]:
    """Turn hvac/requests failures into VaultOperationError, dropping their messages (which may echo data)."""
    try:
        yield
    except hvac.exceptions.VaultError as exc:
        status = next((code for cls, code in _HVAC_STATUS.items() if isinstance(exc, cls)), None)
        raise VaultOperationError(operation, path, status) from None
    except requests.exceptions.SSLError:
        raise VaultOperationError(operation, path, reason="TLS verification failed") from None
    except requests.exceptions.Timeout:
        raise VaultOperationError(operation, path, reason="timed out") from None
    except requests.exceptions.ConnectionError:
        raise VaultOperationError(operation, path, reason="connection failed") from None


def vault_client(address: str, ca_file: Path | str, token: str = "") -> Any:
    """An hvac client that verifies TLS with `ca_file` and ignores proxy, netrc and VAULT_TOKEN settings."""
    session = requests.Session()
    session.trust_env = False
    # hvac prefers a given session's `verify` over its own argument, and a new session's is True.
    session.verify = str(ca_file)
    # token="" (not None) stops hvac from reading VAULT_TOKEN or ~/.vault-token.
    return hvac.Client(url=address, token=token, verify=str(ca_file), timeout=REQUEST_TIMEOUT, session=session)


def read_health(api: Any) -> VaultHealth:
    """GET sys/health (hvac's default is HEAD), so a sealed or standby node still answers with a body."""
    with vault_call("read health", "sys/health"):
        response = api.sys.read_health_status(method="GET")
    # hvac returns a dict for 200 and the raw response for the other codes.
    status = 200 if isinstance(response, dict) else int(response.status_code)
    if status not in HEALTH_CODES:
        raise VaultOperationError("read health", "sys/health", status)
    body: dict[str, Any] = response if isinstance(response, dict) else response.json()
    return VaultHealth(
        initialized=bool(body.get("initialized")),
        sealed=bool(body.get("sealed")),
        standby=bool(body.get("standby")),
        version=str(body.get("version", "")),
        cluster_id=body.get("cluster_id") or None,
    )


def wait_active(api: Any, timeout: float = 30.0) -> VaultHealth:
    """Poll sys/health until the node is unsealed and active (raft elects itself leader just after unseal)."""
    deadline = time.monotonic() + timeout
    while True:
        status = read_health(api)
        if status["initialized"] and not status["sealed"] and not status["standby"]:
            return status
        if time.monotonic() >= deadline:
            raise VaultOperationError("wait for active node", "sys/health", reason=f"not active after {timeout:.0f} s")
        time.sleep(0.02)
