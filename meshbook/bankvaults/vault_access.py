"""Vault from the notebook host, through hvac, with no secret ever shown.

The runbooks must compare what a pod received with what Vault holds, without a cluster-side helper and
without exposing Vault outside the cluster. `VaultAccess` therefore reaches `vault-0:8200` through the API
server's port-forward (the official client's `kubernetes.stream.portforward`, one WebSocket per TCP
connection) behind a local listener on 127.0.0.1, so hvac talks plain HTTPS to it. TLS stays verified
against the CA the operator put in Secret `vault-tls` (its server certificate carries IP SAN 127.0.0.1),
and the root token comes from Secret `vault-unseal-keys`. Every value read from Vault is a `SecretValue`,
whose text forms never contain the value, and every error message is scrubbed of known secrets.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

import certifi
import hvac
import hvac.exceptions
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from meshbook.bankvaults.secret_value import SecretValue, scrub
from meshbook.errors import MeshbookError, UnreachableError
from meshbook.kube.portforward import PortForwarder
from meshbook.params import RunbookParams

__all__ = [
    "CA_KEY",
    "ROOT_TOKEN_KEY",
    "TLS_SECRET",
    "UNSEAL_SECRET",
    "VAULT_POD",
    "VAULT_PORT",
    "VaultAccess",
]

VAULT_POD = "vault-0"
VAULT_PORT = 8200
TLS_SECRET = "vault-tls"
CA_KEY = "ca.crt"
UNSEAL_SECRET = "vault-unseal-keys"
ROOT_TOKEN_KEY = "vault-root"


class VaultAccess:
    """hvac access to the scenario's Vault, as the root token, for checks and what-if experiments.

    Use as a context manager: entering reads the CA and root token from the cluster and, unless
    `params.vault.address` is set, starts the port-forward to `vault-0:8200`; leaving stops it.
    """

    def __init__(self, params: RunbookParams, api: client.ApiClient, *, timeout: float = 30.0) -> None:
        self.params = params
        self.namespace = params.vault.namespace
        self.timeout = timeout
        self._api = api
        self._core = client.CoreV1Api(api)
        self._forwarder: PortForwarder | None = None
        self._client: hvac.Client | None = None
        self._token: SecretValue | None = None
        self._ca_dir: tempfile.TemporaryDirectory[str] | None = None
        self._secrets: list[SecretValue] = []
        self.address: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def via(self) -> str:
        """How Vault is reached: the explicit address, or the port-forward target."""
        if self.params.vault.address:
            return "vault.address"
        return f"port-forward {self.namespace}/{VAULT_POD}:{VAULT_PORT}"

    def open(self) -> VaultAccess:
        if self._client is not None:
            return self
        if self._api.configuration.debug:
            raise MeshbookError(
                "the kubernetes client has debug logging on, which would log Secret contents; "
                "turn it off (Configuration.debug = False) before reading Vault's root token"
            )
        try:
            self._token = self._secret_key(UNSEAL_SECRET, ROOT_TOKEN_KEY)
            self._secrets.append(self._token)
            verify = self._verify_setting()
            if self.params.vault.address:
                self.address = self.params.vault.address.rstrip("/")
            else:
                self._forwarder = PortForwarder(self._api, self.namespace, VAULT_POD, VAULT_PORT, self.timeout)
                self.address = f"https://127.0.0.1:{self._forwarder.local_port}"
            self._client = hvac.Client(
                url=self.address, token=self._token.reveal(), verify=verify, timeout=self.timeout
            )
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.adapter.close()
        self._client = None
        if self._forwarder is not None:
            self._forwarder.close()
            self._forwarder = None
        if self._ca_dir is not None:
            self._ca_dir.cleanup()
            self._ca_dir = None

    def __enter__(self) -> VaultAccess:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._client is not None else "closed"
        return f"VaultAccess(address={self.address!r}, via={self.via!r}, token=<hidden>, {state})"

    __str__ = __repr__

    # -- cluster side ------------------------------------------------------------------------------

    def _read_secret_data(self, name: str) -> dict[str, str]:
        """The Secret's base64 `data`, read raw so no client model holding it lingers (their repr shows it)."""
        try:
            response: Any = self._core.read_namespaced_secret(
                name, self.namespace, _preload_content=False, _request_timeout=self.timeout
            )
            body = json.loads(response.data)
        except ApiException as exc:
            if exc.status == 404:
                raise MeshbookError(
                    f"Secret {self.namespace}/{name} not found: the Bank-Vaults operator writes it once the Vault "
                    f"custom resource in namespace {self.namespace} is up; apply the Vault CR and wait for vault-0"
                ) from None
            raise UnreachableError(
                f"cannot read Secret {self.namespace}/{name}: HTTP {exc.status} {exc.reason}"
            ) from None
        except Exception as exc:
            raise UnreachableError(
                f"cannot reach the cluster at {self._api.configuration.host} to read Secret "
                f"{self.namespace}/{name}: {type(exc).__name__}"
            ) from None
        data = body.get("data") if isinstance(body, dict) else None
        return {str(k): str(v) for k, v in (data or {}).items()}

    def _secret_key(self, name: str, key: str) -> SecretValue:
        data = self._read_secret_data(name)
        if key not in data:
            raise MeshbookError(
                f"Secret {self.namespace}/{name} has no key {key!r} (keys: {', '.join(sorted(data)) or 'none'})"
            )
        try:
            return SecretValue(base64.b64decode(data[key]).decode())
        except ValueError:
            raise MeshbookError(f"Secret {self.namespace}/{name} key {key!r} is not base64-encoded UTF-8") from None

    def _verify_setting(self) -> str | bool:
        """A CA bundle file for requests: the operator's CA; with an explicit address also the system CAs."""
        explicit = self.params.vault.address
        if explicit and explicit.startswith("http://"):
            return True
        try:
            data = self._read_secret_data(TLS_SECRET)
        except MeshbookError:
            if explicit:
                return True  # no operator CA: the explicit address must present a publicly trusted cert
            raise
        if CA_KEY not in data:
            raise MeshbookError(f"Secret {self.namespace}/{TLS_SECRET} has no key {CA_KEY!r}")
        pem = base64.b64decode(data[CA_KEY]).decode()
        if explicit:
            pem = Path(certifi.where()).read_text(encoding="utf-8") + "\n" + pem
        self._ca_dir = tempfile.TemporaryDirectory(prefix="meshbook-vault-ca-")
        path = os.path.join(self._ca_dir.name, "ca.crt")
        Path(path).write_text(pem, encoding="utf-8")
        return path

    # -- Vault side --------------------------------------------------------------------------------

    @property
    def client(self) -> hvac.Client:
        """The hvac client (authenticated as root); only while open."""
        if self._client is None:
            raise MeshbookError("VaultAccess is not open; use `with VaultAccess(params, api) as vault:`")
        return self._client

    def _error(self, message: str, kind: type[MeshbookError] = MeshbookError) -> MeshbookError:
        """An error whose message has every secret this object knows replaced by `<redacted>`."""
        return kind(scrub(message, self._secrets))

    def _fail(self, what: str, exc: Exception) -> NoReturn:
        """Raise a meshbook error for a failed Vault call, with known secrets scrubbed from its text."""
        if isinstance(exc, hvac.exceptions.VaultError):
            errors = "; ".join(str(e) for e in (exc.errors or [])) if isinstance(exc.errors, list) else ""
            detail = f"{type(exc).__name__}" + (f": {errors}" if errors else "")
            raise self._error(f"Vault {what}: {detail}") from None
        if any(cls.__name__ == "SSLError" for cls in type(exc).__mro__):  # requests' or ssl's
            raise self._error(
                f"Vault {what}: TLS verification of {self.address} failed against the CA in Secret "
                f"{self.namespace}/{TLS_SECRET}; verification stays on",
                UnreachableError,
            ) from None
        if isinstance(exc, OSError):  # requests.RequestException is an OSError
            cause = self._forwarder.last_error if self._forwarder is not None else None
            where = f"{self.address} ({self.via})"
            message = f"Vault {what}: cannot reach {where}: {type(exc).__name__}" + (f"; {cause}" if cause else "")
            raise self._error(message, UnreachableError) from None
        raise self._error(f"Vault {what}: {type(exc).__name__}") from None

    def status(self) -> dict[str, Any]:
        """`initialized`, `sealed`, `version`, `cluster_id` from GET /v1/sys/health (any status code)."""
        try:
            response = self.client.sys.read_health_status(method="GET")
            body: Any = response if isinstance(response, dict) else response.json()
        except Exception as exc:
            self._fail("health check", exc)
        return {
            "initialized": bool(body.get("initialized")),
            "sealed": bool(body.get("sealed")),
            "version": str(body.get("version", "")),
            "cluster_id": str(body.get("cluster_id", "")),
        }

    def _kv_data(self, path: str, body: Mapping[str, Any]) -> Mapping[str, Any]:
        data = body.get("data") or {}
        if "/data/" in f"/{path.strip('/')}" and "metadata" in data:
            inner = data.get("data")  # KV version 2: {"data": {"data": {...}, "metadata": {...}}}
            return inner if isinstance(inner, Mapping) else {}  # None: the latest version is deleted
        return data

    def read_secret(self, path: str, key: str) -> SecretValue:
        """The value of `key` at `path` (a KV v2 API path such as secret/data/accounts/aws)."""
        path = path.strip("/")
        try:
            body = self.client.read(path)
        except Exception as exc:
            self._fail(f"read of {path}", exc)
        if body is None:
            raise self._error(f"Vault has no secret at {path} (404); KV v2 paths include data/, e.g. secret/data/x")
        data = self._kv_data(path, body)
        if key not in data:
            names = ", ".join(sorted(str(k) for k in data)) or "none"
            raise self._error(f"Vault secret {path} has no key {key!r} (keys: {names})")
        raw = data[key]
        value = SecretValue(raw if isinstance(raw, str) else str(raw))
        self._secrets.append(value)
        return value

    def write_secret(self, path: str, data: Mapping[str, str | SecretValue]) -> int | None:
        """Write `data` at `path` (KV v2 API path) for what-if experiments; returns the new version."""
        path = path.strip("/")
        plain: dict[str, str] = {}
        for name, value in data.items():
            secret = value if isinstance(value, SecretValue) else SecretValue(value)
            self._secrets.append(secret)
            plain[name] = secret.reveal()
        payload: dict[str, Any] = {"data": plain} if "/data/" in f"/{path}" else plain
        try:
            response = self.client.write_data(path, data=payload)
        except Exception as exc:
            self._fail(f"write of {path}", exc)
        finally:
            plain.clear()
            payload.clear()
        if isinstance(response, dict):
            version = (response.get("data") or {}).get("version")
            return int(version) if version is not None else None
        return None

    def audit_hash(self, value: SecretValue | str) -> str | None:
        """Vault's audit-log HMAC of `value` (sys/audit-hash on the first audit device), or None without one."""
        secret = value if isinstance(value, SecretValue) else SecretValue(value)
        self._secrets.append(secret)
        try:
            devices = self.client.sys.list_enabled_audit_devices()
        except Exception as exc:
            self._fail("list of audit devices", exc)
        listing = devices.get("data", devices) if isinstance(devices, dict) else {}
        paths = sorted(str(p) for p, d in listing.items() if isinstance(d, Mapping) and "type" in d)
        if not paths:
            return None
        device = paths[0].rstrip("/")
        try:
            response = self.client.sys.calculate_hash(device, secret.reveal())
        except Exception as exc:
            self._fail(f"audit-hash on device {device}", exc)
        body: Any = response if isinstance(response, dict) else response.json()
        found = (body.get("data") or {}).get("hash") or body.get("hash")
        return str(found) if found else None
