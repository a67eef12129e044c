"""Every secret value a run could have touched, gathered at the end of a run for the leak scan.

The notebooks' kernels each learn secrets in their own process; the runner, which scans the run
directory afterwards, gathers them again from their sources, each with its class (`SecretClass`):

- the kubeconfig's credentials, read from the official client's configuration whatever key it keeps
  them under (`BearerToken` today, `authorization` in older clients) and the client key file it loaded;
- Secrets, listed once cluster-wide (or read one by one when listing is forbidden): the `token` of every
  `kubernetes.io/service-account-token` Secret, every private key in a Secret (`tls.key`, Vault's
  `vault-tls` `server.key` and `ca.key`), unseal keys and root token of `vault-unseal-keys`;
- a meshbook sandbox's own files, when the kubeconfig is the one in its state directory: the user
  token, the serving CA and API server keys and the key that signs its service-account tokens;
- the Vault CR's startupSecrets (and the demo values meshbook's own template carries) and the KV value
  the scenarios read.

Service-account tokens that pods get projected (TokenRequest) exist nowhere but in the pod: no API
returns them again, and minting new ones would only add secrets. What the sandbox signs is covered by
its signing key; a stray JWT is the pattern scan's to find. Labels never contain a value.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from kubernetes import client

from meshbook.errors import MeshbookError
from meshbook.manifests import DEMO_STARTUP_SECRETS
from meshbook.params import RunbookName, RunbookParams

__all__ = ["SANDBOX_FILES", "KnownSecret", "KnownSecrets", "SecretClass", "known_secrets"]

MIN_VALUE = 4
"""Shorter values are no secrets (the redactor ignores them too)."""


class SecretClass(StrEnum):
    """What kind of secret a value is: the scan's coverage is counted by these."""

    KUBECONFIG_TOKEN = "kubeconfig bearer token"
    KUBECONFIG_CLIENT_KEY = "kubeconfig client key"
    SERVICE_ACCOUNT_TOKEN = "service-account token"
    SIGNING_KEY = "service-account signing key"
    TLS_PRIVATE_KEY = "TLS private key"
    UNSEAL_KEY = "Vault unseal key"
    ROOT_TOKEN = "Vault root token"
    STARTUP_SECRET = "Vault startupSecrets value"
    KV_VALUE = "Vault KV value"


@dataclass(frozen=True)
class KnownSecret:
    """A value's class and where it was read (`source`, never the value)."""

    secret_class: SecretClass
    source: str


@dataclass
class KnownSecrets:
    """value -> `KnownSecret`, and the sources that could not be read (why the counts may be short)."""

    values: dict[str, KnownSecret] = field(default_factory=dict)
    unread: list[str] = field(default_factory=list)
    _in_class: dict[SecretClass, set[str]] = field(default_factory=dict, repr=False)

    def add(self, value: str, secret_class: SecretClass, source: str) -> None:
        """Keep a value under its first class (it is counted in every class it was found as); short
        values are dropped."""
        if len(value.strip()) >= MIN_VALUE:
            self.values.setdefault(value, KnownSecret(secret_class, source))
            self._in_class.setdefault(secret_class, set()).add(value)

    def labels(self) -> dict[str, str]:
        """value -> class name, for the redactor and the scan: a leak is reported by class."""
        return {value: str(known.secret_class) for value, known in self.values.items()}

    def counts(self) -> dict[str, int]:
        """class -> number of values, every class listed (0 when none was found)."""
        return {str(cls): len(self._in_class.get(cls, ())) for cls in SecretClass}


def _walk_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk_strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk_strings(item, f"{path}[{index}]")
    elif isinstance(value, str):
        yield path, value


SANDBOX_FILES = {
    "token": SecretClass.KUBECONFIG_TOKEN,
    "ca.key": SecretClass.TLS_PRIVATE_KEY,
    "apiserver.key": SecretClass.TLS_PRIVATE_KEY,
    "sa.key": SecretClass.SIGNING_KEY,
}
"""A sandbox's secret files (state directory) and their classes."""


def _sandbox_files(state: Path, found: KnownSecrets) -> None:
    for name, cls in SANDBOX_FILES.items():
        try:
            found.add((state / name).read_text().strip(), cls, f"sandbox state {name}")
        except FileNotFoundError:
            pass  # sa.key exists only once a token was signed
        except (OSError, UnicodeDecodeError):
            found.unread.append(f"sandbox state {name}")


def _kubeconfig_credentials(api: client.ApiClient, found: KnownSecrets) -> None:
    configuration = api.configuration
    for key, token in sorted((getattr(configuration, "api_key", None) or {}).items()):
        if isinstance(token, str):
            found.add(token.removeprefix("Bearer ").strip(), SecretClass.KUBECONFIG_TOKEN, f"kubeconfig {key}")
    key_file = getattr(configuration, "key_file", None)
    if key_file:
        try:
            found.add(Path(key_file).read_text().strip(), SecretClass.KUBECONFIG_CLIENT_KEY, "kubeconfig client key")
        except (OSError, UnicodeDecodeError):
            found.unread.append("kubeconfig client key file")


def _decoded(encoded: Any) -> str:
    return base64.b64decode(str(encoded)).decode(errors="replace") if encoded else ""


def _is_private_key(text: str) -> bool:
    return "PRIVATE KEY-----" in text


def _from_secret(secret: Mapping[str, Any], found: KnownSecrets, params: RunbookParams) -> None:
    """The secrets one Secret holds, by its type and key names; other data (ca.crt, config) is not one."""
    meta = secret.get("metadata") or {}
    where = f"Secret {meta.get('namespace', '')}/{meta.get('name', '')}"
    data = secret.get("data") or {}
    for key, encoded in sorted(data.items()):
        try:
            value = _decoded(encoded)
        except ValueError:
            continue
        if secret.get("type") == "kubernetes.io/service-account-token" and key == "token":
            found.add(value, SecretClass.SERVICE_ACCOUNT_TOKEN, where)
        elif _is_private_key(value) or key in ("tls.key", "server.key", "ca.key"):
            found.add(value.strip(), SecretClass.TLS_PRIVATE_KEY, f"{where} {key}")
        elif meta.get("name") == "vault-unseal-keys" and meta.get("namespace") == params.vault.namespace:
            cls = SecretClass.ROOT_TOKEN if key == "vault-root" else SecretClass.UNSEAL_KEY
            found.add(value, cls, f"{where} {key}")


def _secrets(api: client.ApiClient, params: RunbookParams, found: KnownSecrets) -> None:
    """Every Secret at once when allowed (a live cluster may forbid it); else the ones meshbook knows."""
    core = client.CoreV1Api(api)
    try:
        raw: Any = core.list_secret_for_all_namespaces(_preload_content=False)
        items = json.loads(raw.data).get("items") or []
    except Exception:
        items = []
        for name in ("vault-unseal-keys", "vault-tls"):
            try:
                one: Any = core.read_namespaced_secret(name, params.vault.namespace, _preload_content=False)
                items.append(json.loads(one.data))
            except Exception:
                found.unread.append(f"Secret {params.vault.namespace}/{name}")
    for secret in items:
        if isinstance(secret, Mapping):
            _from_secret(secret, found, params)


def _startup_secrets(api: client.ApiClient, params: RunbookParams, found: KnownSecrets) -> None:
    try:
        vault: Any = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "vault.banzaicloud.com", "v1alpha1", params.vault.namespace, "vaults", "vault"
        )
    except Exception:
        found.unread.append(f"Vault CR {params.vault.namespace}/vault")
        return
    startup = (dict(vault).get("spec") or {}).get("externalConfig", {}).get("startupSecrets") or []
    for path, value in _walk_strings(startup, "Vault CR startupSecrets"):
        if ".data" in path:
            found.add(value, SecretClass.STARTUP_SECRET, path)


def _kv_value(api: client.ApiClient, params: RunbookParams, found: KnownSecrets) -> None:
    from meshbook.bankvaults.vault_access import VaultAccess

    try:
        with VaultAccess(params, api) as vault_access:
            secret = vault_access.read_secret(params.vault.secret_path, params.vault.secret_key)
            found.add(secret.reveal(), SecretClass.KV_VALUE, f"{params.vault.secret_path}#{params.vault.secret_key}")
    except (MeshbookError, OSError):
        found.unread.append(f"Vault KV {params.vault.secret_path}#{params.vault.secret_key}")


def known_secrets(
    api: client.ApiClient | None, params: RunbookParams, *, sandbox_state: Path | None = None
) -> KnownSecrets:
    """Every secret known now, by class; a source that cannot be read is listed in `unread`, not raised.

    `sandbox_state`: the state directory of the meshbook sandbox the run used, whose key files are read.
    """
    found = KnownSecrets()
    for path, value in _walk_strings(DEMO_STARTUP_SECRETS, "demo startupSecrets"):
        found.add(value, SecretClass.STARTUP_SECRET, path)
    if api is not None:
        _kubeconfig_credentials(api, found)
    if sandbox_state is not None:
        _sandbox_files(sandbox_state, found)
    if api is None:
        found.unread.append("the cluster (no usable kubeconfig)")
        return found
    if set(params.runbooks) <= {RunbookName.AUDIT}:
        # `meshbook audit` reads no Secret and no Vault value: none can be in its run directory, and the
        # auditor's RBAC grants none. The kubeconfig's credentials and the pattern pass still apply.
        found.unread.append("cluster Secrets and Vault values: not read by the read-only audit")
        return found
    with contextlib.suppress(Exception):  # each source is tried on its own; none may stop the others
        _secrets(api, params, found)
    _startup_secrets(api, params, found)
    _kv_value(api, params, found)
    return found
