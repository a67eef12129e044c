"""The Bank-Vaults webhook's Secret and ConfigMap mutation (`/secrets`, `/configmaps`; webhook v1.23).

A Secret whose data holds `vault:PATH#KEY` values, inline `${vault:...}` pieces or a
`kubernetes.io/dockerconfigjson` whose auths carry `vault:` credentials is stored with the values read
from the real OpenBao at admission; a ConfigMap likewise (when the chart registers its webhook). The
webhook reads them as itself: one of its pods dials the Vault address (judged by the connectivity
model like any connection), logs in with kubernetes auth as its own service account (OpenBao asks the
sandbox's TokenReview), with the role of the object's `vault-role` annotation, else its `VAULT_ROLE`,
else `default`, and the CA of the `vault-tls-secret` Secret in its own namespace. A failure is the
webhook's error, answered with HTTP 500 (the hook's failurePolicy decides); no message holds a value.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from meshbook.sandbox.addons.mesh_view import judge_connection
from meshbook.sandbox.addons.vault_client import VaultClient, VaultRequestError
from meshbook.sandbox.addons.vault_injector import InjectionError, Reader, inject, is_reference
from meshbook.sandbox.addons.vault_webhook import (
    PREFIX,
    admission_review_error,
    refused_address,
    template_role,
    webhook_settings,
)
from meshbook.sandbox.addons.webhooks import WebhookFailed
from meshbook.sandbox.apiserver.admission import AdmissionRequest
from meshbook.sandbox.node.services import NodeServices
from meshbook.sandbox.storage.store import Object

DOCKER_CONFIG_KEY = ".dockerconfigjson"


class MutationError(Exception):
    """Why the mutation failed, in the webhook's words (wrapped as upstream wraps it)."""


def _decoded(secret: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(value).decode("utf-8", errors="surrogateescape")
        except (binascii.Error, ValueError):
            out[key] = ""
    return out


def _docker_auths(text: str) -> dict[str, Any]:
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise MutationError(
            f"failed to check if secret needs to be mutated: unmarshal dockerconfig json failed: {exc}"
        ) from None
    auths = config.get("auths") if isinstance(config, dict) else None
    return auths if isinstance(auths, dict) else {}


def _auth_text(creds: Mapping[str, Any]) -> str:
    try:
        return base64.b64decode(str(creds.get("auth", ""))).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise MutationError(f"auth base64 decoding failed: {exc}") from None


def secret_needs_mutation(secret: Mapping[str, Any]) -> bool:
    data = _decoded(secret)
    docker_auths = _docker_auths(data[DOCKER_CONFIG_KEY]).values() if DOCKER_CONFIG_KEY in data else []
    if any(_auth_text(creds).startswith("vault:") for creds in docker_auths):
        return True
    return any(is_reference(value) for value in data.values())


def configmap_needs_mutation(configmap: Mapping[str, Any]) -> bool:
    if any(is_reference(str(v)) for v in (configmap.get("data") or {}).values()):
        return True
    return any(
        base64.b64decode(v).decode(errors="replace").startswith("vault:")
        for v in (configmap.get("binaryData") or {}).values()
    )


def _mutate_docker_config(text: str, read: Reader) -> str:
    """mutateDockerCreds: `auth` is `vault:P#K:vault:P#K` (user:password); `username`/`password` are
    replaced when both were set. Only the auths with references are kept, as upstream assembles them."""
    assembled: dict[str, Any] = {}
    for registry, creds in _docker_auths(text).items():
        auth = _auth_text(creds)
        if not auth.startswith("vault:"):
            continue
        parts = auth.split(":")
        if len(parts) != 4:
            raise MutationError("mutate dockerconfig json failed: splitting auth credentials failed")
        values = inject({"username": ":".join(parts[:2]), "password": ":".join(parts[2:])}, read)
        entry: dict[str, str] = {}
        if creds.get("username") and creds.get("password"):
            entry |= {"username": values["username"], "password": values["password"]}
        entry["auth"] = base64.b64encode(f"{values['username']}:{values['password']}".encode()).decode()
        assembled[registry] = entry
    return json.dumps({"auths": assembled}, separators=(",", ":"))


def mutate_secret(secret: Object, read: Reader) -> Object:
    data = _decoded(secret)
    if DOCKER_CONFIG_KEY in data:
        try:
            data[DOCKER_CONFIG_KEY] = _mutate_docker_config(data[DOCKER_CONFIG_KEY], read)
        except (InjectionError, VaultRequestError) as exc:
            raise MutationError(f"mutate dockerconfig json failed: {exc}") from None
    try:
        resolved = inject(data, read)
    except (InjectionError, VaultRequestError) as exc:
        raise MutationError(f"mutate generic secret failed: {exc}") from None
    secret["data"] = {
        key: base64.b64encode(value.encode("utf-8", errors="surrogateescape")).decode()
        for key, value in resolved.items()
    }
    return secret


def mutate_configmap(configmap: Object, read: Reader) -> Object:
    if configmap.get("data"):
        configmap["data"] = inject({k: str(v) for k, v in configmap["data"].items()}, read)
    for key, value in list((configmap.get("binaryData") or {}).items()):
        text = base64.b64decode(value).decode(errors="replace")
        if text.startswith("vault:"):
            stored = inject({key: text}, read)[key]  # binary values are kept base64-encoded in Vault
            try:
                configmap["binaryData"][key] = base64.b64encode(base64.b64decode(stored, validate=True)).decode()
            except (binascii.Error, ValueError) as exc:
                raise MutationError(f"failed to decode ConfigMap binary data: {exc}") from None
    return configmap


class VaultObjectsWebhookBackend:
    """The `vault-secrets-webhook` Service's `/secrets` and `/configmaps` webhooks."""

    def __init__(self, services: NodeServices) -> None:
        self.services = services

    async def __call__(self, hook: Mapping[str, Any], request: AdmissionRequest, obj: Object) -> Object:
        kind = request.rt.kind
        if kind not in ("Secret", "ConfigMap"):
            return obj
        annotations = obj.get("metadata", {}).get("annotations") or {}
        if annotations.get(PREFIX + "mutate") == "skip":
            return obj
        needs = secret_needs_mutation if kind == "Secret" else configmap_needs_mutation
        try:
            if not needs(obj):
                return obj
            service = (hook.get("clientConfig") or {}).get("service") or {}
            client = await self._client(service.get("namespace", ""), service.get("name", ""), obj, request.namespace)
            mutate = mutate_secret if kind == "Secret" else mutate_configmap
            return await asyncio.to_thread(mutate, obj, client.read)
        except (MutationError, InjectionError, VaultRequestError) as exc:
            raise WebhookFailed(admission_review_error(f"could not mutate object: {exc}")) from None

    async def _client(self, namespace: str, service: str, obj: Object, object_namespace: str) -> VaultClient:
        """newVaultClient: the address, CA and login of the webhook's own identity."""
        annotations = obj.get("metadata", {}).get("annotations") or {}
        defaults, _ = webhook_settings(self.services.core, namespace, service)
        address = defaults.get("VAULT_ADDR", "https://vault:8200")
        if PREFIX + "vault-addr" in annotations:
            refused = refused_address(annotations[PREFIX + "vault-addr"], defaults)
            if refused is not None:
                raise refused
            address = annotations[PREFIX + "vault-addr"]
        pod, container = self._webhook_pod(namespace, service)
        url = urlparse(address)
        host, port = url.hostname or "vault", url.port or 8200
        auth_path = annotations.get(PREFIX + "vault-path") or defaults.get("VAULT_PATH", "kubernetes")
        login_url = f'Put "{address}/v1/auth/{auth_path}/login"'
        verdict, backend = judge_connection(self.services.core, self.services.network, pod, container, host, port)
        if backend is None:
            raise MutationError(f"failed to create vault client: {login_url}: {verdict.failure}")
        tls_secret = annotations.get(PREFIX + "vault-tls-secret") or defaults.get("VAULT_TLS_SECRET", "")
        ca = b""
        if tls_secret:
            data = self.services.secret_data(namespace, tls_secret)
            if data is None:
                raise MutationError(
                    f'failed to create vault client: failed to read Vault TLS Secret: secrets "{tls_secret}" not found'
                )
            ca = data.get("ca.crt", b"")
        skip = (annotations.get(PREFIX + "vault-skip-verify") or defaults.get("VAULT_SKIP_VERIFY", "false")) == "true"
        meta = pod["metadata"]
        jwt = self.services.tokens.token_for(meta["namespace"], pod["spec"].get("serviceAccountName") or "default", pod)
        role = annotations.get(PREFIX + "vault-role") or defaults.get("VAULT_ROLE") or "default"
        role = template_role(role, obj, object_namespace, annotations)
        client = VaultClient(f"https://{backend[0]}:{backend[1]}", address, ca, host, skip_verify=skip)
        try:
            await asyncio.to_thread(client.login, auth_path, role, jwt or "")
        except VaultRequestError as exc:
            raise MutationError(f"failed to create vault client: {exc}") from None
        except (OSError, ssl.SSLError) as exc:
            raise MutationError(f"failed to create vault client: {login_url}: {_tls_words(exc)}") from None
        return client

    def _webhook_pod(self, namespace: str, service: str) -> tuple[Object, str]:
        """A ready pod of the webhook's Deployment and its webhook container (it answered the call)."""
        rt = self.services.core.registry.lookup("", "v1", "pods")
        assert rt is not None
        for pod in self.services.core.store.list(rt, namespace):
            if (pod["metadata"].get("labels") or {}).get("app.kubernetes.io/name") != service:
                continue
            conditions = (pod.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                names = [c["name"] for c in pod["spec"].get("containers") or [] if c["name"] != "istio-proxy"]
                return pod, names[0] if names else service
        raise MutationError(f"failed to create vault client: no ready pod of {namespace}/{service} to call Vault from")


def _tls_words(exc: BaseException) -> str:
    """Go's wording for the TLS failures a Python client meets."""
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "tls: failed to verify certificate: x509: certificate signed by unknown authority"
    return text
