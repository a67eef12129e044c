"""The Vault API client the Bank-Vaults stand-ins share: the standard library over verified TLS, payload-free errors.

Bank-Vaults' init, unseal and configure need a handful of calls (GET, PUT/POST with a JSON body), so they
are made with `http.client` rather than hvac and requests, which the server process would otherwise keep
loaded (about 12 MB resident) for these calls alone. Like hvac with `verify=CA`, the server's certificate
and host name are verified against the given CA; no proxy, netrc or VAULT_* setting is read.

Errors name the operation, the API path and the HTTP status, nothing else: Vault's messages can echo
request data, and these calls carry unseal keys, tokens and secret values.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import urlsplit

from meshbook.sandbox.vault.openbao import HEALTH_CODES

REQUEST_TIMEOUT = 30


class VaultOperationError(RuntimeError):
    """A Vault API call failed. Carries the operation, path and HTTP status only, never a payload."""

    def __init__(self, operation: str, path: str, status: int | None = None, reason: str = "") -> None:
        self.operation = operation
        self.path = path
        self.status = status
        self.reason = reason or (f"HTTP {status}" if status is not None else "failed")
        super().__init__(f"{operation} ({path}): {self.reason}")


class VaultHTTPError(Exception):
    """An answer with an error status. The status only: the body's `errors` can echo request data."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(f"HTTP {status}")


class VaultCAFileError(Exception):
    """The CA file to verify the server with cannot be read."""


class VaultHealth(TypedDict):
    initialized: bool
    sealed: bool
    standby: bool
    version: str
    cluster_id: str | None


@contextmanager
def vault_call(operation: str, path: str) -> Iterator[None]:
    """Turn client failures into VaultOperationError, dropping their messages (which may echo data)."""
    try:
        yield
    except VaultHTTPError as exc:
        raise VaultOperationError(operation, path, exc.status) from None
    except VaultCAFileError as exc:
        raise VaultOperationError(operation, path, reason=str(exc)) from None
    except ssl.SSLError:
        raise VaultOperationError(operation, path, reason="TLS verification failed") from None
    except TimeoutError:
        raise VaultOperationError(operation, path, reason="timed out") from None
    except (OSError, http.client.HTTPException):
        raise VaultOperationError(operation, path, reason="connection failed") from None
    except ValueError:  # a body that is not JSON
        raise VaultOperationError(operation, path, reason="the answer is not JSON") from None


class VaultApi:
    """Calls to one Vault address with one token; each call is one HTTPS request on a fresh connection."""

    def __init__(self, address: str, ca_file: Path | str, token: str = "") -> None:
        url = urlsplit(address)
        if url.scheme != "https" or not url.hostname:
            raise ValueError(f"Vault address {address!r}: expected https://HOST:PORT")
        self.address = address
        self._host, self._port = url.hostname, url.port or 8200
        self._ca_file = str(ca_file)
        self._context: ssl.SSLContext | None = None
        self._token = token

    def _tls(self) -> ssl.SSLContext:
        if self._context is None:  # made on first use, so a missing CA file fails inside vault_call
            try:
                self._context = ssl.create_default_context(cafile=self._ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise VaultCAFileError(f"CA file {self._ca_file} unreadable ({type(exc).__name__})") from None
        return self._context

    def request(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> tuple[int, Any]:
        """One call to /v1/<path>: the status and the decoded JSON body (None when there is none)."""
        headers = {"X-Vault-Request": "true", "Accept": "application/json"}
        if self._token:
            headers["X-Vault-Token"] = self._token
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn = http.client.HTTPSConnection(self._host, self._port, timeout=REQUEST_TIMEOUT, context=self._tls())
        try:
            conn.request(method, f"/v1/{path.lstrip('/')}", body=payload, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        return response.status, (json.loads(raw) if raw.strip() else None)

    def _ok(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        status, data = self.request(method, path, body)
        if status >= 400:
            raise VaultHTTPError(status)
        return data

    def get(self, path: str) -> dict[str, Any]:
        """GET path; its JSON body (an error status, 404 included, raises)."""
        data = self._ok("GET", path)
        return data if isinstance(data, dict) else {}

    def read(self, path: str) -> dict[str, Any] | None:
        """GET path; its JSON body, or None on 404 (as hvac's `read`)."""
        status, data = self.request("GET", path)
        if status == 404:
            return None
        if status >= 400:
            raise VaultHTTPError(status)
        return data if isinstance(data, dict) else None

    def write(self, path: str, data: Mapping[str, Any]) -> dict[str, Any] | None:
        """PUT path with a JSON body; the answer's body, or None for 204."""
        answer = self._ok("PUT", path, data)
        return answer if isinstance(answer, dict) else None


def vault_client(address: str, ca_file: Path | str, token: str = "") -> VaultApi:
    """A client that verifies TLS with `ca_file` and reads no proxy, netrc or VAULT_TOKEN settings."""
    return VaultApi(address, ca_file, token)


def read_health(api: VaultApi) -> VaultHealth:
    """GET sys/health, so a sealed or standby node still answers with a body (its code says which)."""
    with vault_call("read health", "sys/health"):
        status, body = api.request("GET", "sys/health")
    if status not in HEALTH_CODES:
        raise VaultOperationError("read health", "sys/health", status)
    body = body if isinstance(body, dict) else {}
    return VaultHealth(
        initialized=bool(body.get("initialized")),
        sealed=bool(body.get("sealed")),
        standby=bool(body.get("standby")),
        version=str(body.get("version", "")),
        cluster_id=body.get("cluster_id") or None,
    )


def wait_active(api: VaultApi, timeout: float = 30.0) -> VaultHealth:
    """Poll sys/health until the node is unsealed and active (raft elects itself leader just after unseal)."""
    deadline = time.monotonic() + timeout
    while True:
        status = read_health(api)
        if status["initialized"] and not status["sealed"] and not status["standby"]:
            return status
        if time.monotonic() >= deadline:
            raise VaultOperationError("wait for active node", "sys/health", reason=f"not active after {timeout:.0f} s")
        time.sleep(0.02)
