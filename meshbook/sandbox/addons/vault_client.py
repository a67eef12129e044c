"""A blocking Vault API client for the sandbox's Bank-Vaults programs (vault-env, the webhook, the agent).

It speaks to the real OpenBao process behind a Vault pod: TLS verified with the CA a pod would mount and
the server name the caller dialled, a kubernetes-auth login with a service-account JWT (OpenBao asks the
sandbox's TokenReview), then reads. Run it in a thread: it blocks. Errors carry the Vault client's
text (`Error making API request. ...`), never a token or a secret value.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any


class VaultRequestError(Exception):
    """A Vault API answer other than success; the text is what the Vault client prints (no values)."""


def _connection_with_sni(server_name: str, context: ssl.SSLContext) -> Any:
    class Connection(http.client.HTTPSConnection):
        def __init__(self, host: str, **kwargs: Any) -> None:
            kwargs.pop("context", None)
            super().__init__(host, context=context, **kwargs)

        def connect(self) -> None:
            self.sock = socket.create_connection((self.host, self.port), self.timeout)
            self.sock = context.wrap_socket(self.sock, server_hostname=server_name)

    return Connection


class VaultClient:
    """Calls to `backend` (the real host:port) shown as calls to `display` (the address the caller used)."""

    def __init__(self, backend: str, display: str, ca_pem: bytes, server_name: str, skip_verify: bool = False) -> None:
        self.backend, self.display = backend, display
        if skip_verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context = ssl.create_default_context(cadata=ca_pem.decode() or None)
            context.check_hostname = True

        class _SNIHandler(urllib.request.HTTPSHandler):
            def https_open(self, req: Any) -> Any:
                return self.do_open(_connection_with_sni(server_name, context), req)

        self._opener = urllib.request.build_opener(_SNIHandler())
        self.token = ""

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """One API call; None for a 404 without errors (a secret that is not there)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.backend}/v1/{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("X-Vault-Token", self.token)
        try:
            with self._opener.open(req, timeout=10) as resp:
                payload: dict[str, Any] = json.loads(resp.read() or b"{}")
                return payload
        except urllib.error.HTTPError as exc:
            try:
                errors = json.loads(exc.read() or b"{}").get("errors", [])
            except ValueError:
                errors = []
            if exc.code == 404 and not errors:
                return None
            shown = "\n".join(f"\t* {e}" for e in errors) or f"\t* {exc.reason}"
            url = f"{method} {self.display}/v1/{path}"
            raise VaultRequestError(
                f"Error making API request.\n\nURL: {url}\nCode: {exc.code}. Errors:\n\n{shown}"
            ) from None

    def login(self, auth_path: str, role: str, jwt: str) -> None:
        answer = self.call("POST", f"auth/{auth_path}/login", {"role": role, "jwt": jwt}) or {}
        self.token = str((answer.get("auth") or {}).get("client_token", ""))

    def read(self, path: str, version: str = "-1") -> Mapping[str, Any] | None:
        """A secret's data (KV v2: the inner `data`), None when the path holds nothing."""
        query = f"?version={version}" if version not in ("", "-1", "{}") else ""
        secret = self.call("GET", path + query)
        if secret is None:
            return None
        data = secret.get("data")
        if isinstance(data, Mapping) and "/data/" in path:
            data = data.get("data")
        return data if isinstance(data, Mapping) else None
