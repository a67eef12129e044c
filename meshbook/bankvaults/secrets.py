"""Every secret value a run could have touched, gathered at the end of a run for the leak scan.

The notebooks' kernels each learn secrets in their own process; the runner, which scans the run
directory afterwards, gathers them again from their sources: Secret `vault-unseal-keys` (unseal keys and
root token), the Vault CR's startupSecrets, the KV value the scenarios read, the demo values meshbook's
own Vault CR template carries, and the kubeconfig's bearer token. Returned as value -> label; labels
never contain a value.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from typing import Any

from kubernetes import client

from meshbook.errors import MeshbookError
from meshbook.manifests import DEMO_STARTUP_SECRETS
from meshbook.params import RunbookParams


def _walk_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk_strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk_strings(item, f"{path}[{index}]")
    elif isinstance(value, str):
        yield path, value


def known_secrets(api: client.ApiClient | None, params: RunbookParams) -> dict[str, str]:
    """value -> label of every secret known now; sources that cannot be read are skipped."""
    found: dict[str, str] = {}
    for path, value in _walk_strings(DEMO_STARTUP_SECRETS, "demo startupSecrets"):
        found.setdefault(value, path)
    if api is None:
        return found
    token = (getattr(api.configuration, "api_key", None) or {}).get("authorization", "")
    if token:
        found.setdefault(token.removeprefix("Bearer ").strip(), "kubeconfig token")
    core = client.CoreV1Api(api)
    try:
        raw: Any = core.read_namespaced_secret("vault-unseal-keys", params.vault.namespace, _preload_content=False)
        data = json.loads(raw.data).get("data") or {}
        for key, encoded in data.items():
            found.setdefault(base64.b64decode(encoded).decode(errors="replace"), f"Secret vault-unseal-keys {key}")
    except Exception:
        pass
    try:
        vault: Any = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "vault.banzaicloud.com", "v1alpha1", params.vault.namespace, "vault", "vaults"
        )
        startup = (dict(vault).get("spec") or {}).get("externalConfig", {}).get("startupSecrets") or []
        for path, value in _walk_strings(startup, "Vault CR startupSecrets"):
            if ".data" in path:
                found.setdefault(value, path)
    except Exception:
        pass
    try:
        from meshbook.bankvaults.vault_access import VaultAccess

        with VaultAccess(params, api) as vault_access:
            secret = vault_access.read_secret(params.vault.secret_path, params.vault.secret_key)
            found.setdefault(secret.reveal(), f"{params.vault.secret_path}#{params.vault.secret_key}")
    except (MeshbookError, OSError):
        pass
    return {value: label for value, label in found.items() if len(value) >= 4}
