"""What `bank-vaults configure` does with a Vault CR's `externalConfig`, against the real OpenBao API.

Covers `policies`, `auth` (Kubernetes auth, the generic enable/config/roles pattern that approle,
jwt and oidc use, userpass `users`), `secrets` (mounts and their `configuration`: each option's
entries written to `<path>/<option>[/<name>]`, as for PKI's `config/urls`, `root/generate/internal`
and `roles/NAME`, or transit's `keys/NAME`), `groups`, `group-aliases` and `startupSecrets` of type kv.
Unlike Bank-Vaults, which rewrites everything on each loop
(a new KV version every time), it reads first and writes only what differs, so a second run changes
nothing. The returned actions name what was done and where, never a value.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from meshbook.sandbox.vault.apiclient import VaultOperationError, vault_call, vault_client

HANDLED = ("policies", "auth", "secrets", "startupSecrets", "groups", "group-aliases")
# Configuration options that create something new on every write: written only while nothing exists yet.
GENERATE_ONCE = {"root/generate": "cert/ca", "intermediate/generate": "cert/ca"}
# Secrets engines whose configuration needs a service outside OpenBao (the sandbox runs none).
EXTERNAL_SERVICE_ENGINES = {"database": "a database server", "aws": "AWS", "gcp": "Google Cloud", "azure": "Azure"}
# Role fields Vault returns under their token_* names.
_ROLE_ALIASES = {
    "policies": "token_policies",
    "ttl": "token_ttl",
    "max_ttl": "token_max_ttl",
    "period": "token_period",
    "bound_cidrs": "token_bound_cidrs",
    "num_uses": "token_num_uses",
}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _seconds(value: Any) -> float | None:
    """A Vault duration (3600, "3600", "1h", "1h30m") in seconds; None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if text.isdigit():
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _as_list(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value]
    return [part.strip() for part in str(value).split(",") if part.strip()]


def _same(key: str, want: Any, have: Any) -> bool:
    """Whether a stored field already holds the wanted value, allowing for Vault's normal forms."""
    if have is None:
        return False
    if isinstance(want, Mapping) or isinstance(have, Mapping):
        return isinstance(want, Mapping) and isinstance(have, Mapping) and dict(want) == dict(have)
    if key.endswith(("ttl", "period")):
        return _seconds(want) is not None and _seconds(want) == _seconds(have)
    if isinstance(want, list | tuple) or isinstance(have, list | tuple):
        return _as_list(want) == _as_list(have)
    if isinstance(want, bool) or isinstance(have, bool):
        return str(want).lower() == str(have).lower()
    if isinstance(want, str) and isinstance(have, str):
        return want.strip() == have.strip()
    return str(want) == str(have)


def _covers(want: Mapping[str, Any], have: Mapping[str, Any] | None, aliases: Mapping[str, str]) -> bool:
    if have is None:
        return False
    return all(_same(k, v, have.get(aliases.get(k, k), have.get(k))) for k, v in want.items())


def _read(api: Any, operation: str, path: str) -> dict[str, Any] | None:
    """GET path; its `data`, or None on 404."""
    with vault_call(operation, path):
        response = api.read(path)
    if not isinstance(response, dict):
        return None
    data = response.get("data")
    return data if isinstance(data, dict) else None


def _read_or_none(api: Any, operation: str, path: str) -> dict[str, Any] | None:
    """Like _read, for paths some engines answer only to writes (405) or without data."""
    try:
        return _read(api, operation, path)
    except VaultOperationError as exc:
        if exc.status in (400, 405):
            return None
        raise


def _write(api: Any, operation: str, path: str, data: Mapping[str, Any]) -> None:
    with vault_call(operation, path):
        api.write_data(path, data=dict(data))


def _entries(config: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = config.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ValueError(f"externalConfig.{key} must be a list of objects")
    return value


def _policies(api: Any, config: Mapping[str, Any], actions: list[str]) -> None:
    for index, policy in enumerate(_entries(config, "policies")):
        name, rules = policy.get("name"), policy.get("rules")
        if not name or not isinstance(rules, str):
            raise ValueError(f"externalConfig.policies[{index}] needs a name and rules")
        path = f"sys/policy/{name}"
        current = _read(api, "read policy", path)
        if current is not None and str(current.get("rules", "")).strip() == rules.strip():
            actions.append(f"policy {name} unchanged")
            continue
        _write(api, "write policy", path, {"policy": rules})
        actions.append(f"policy {name} written")


def _mount_path(entry: Mapping[str, Any], kind: str) -> str:
    path = str(entry.get("path") or entry.get("type") or "").strip("/")
    if not path:
        raise ValueError(f"externalConfig {kind} entry needs a type or path")
    return path


def _auth(
    api: Any,
    config: Mapping[str, Any],
    kubernetes_host: str,
    kubernetes_ca_pem: str,
    token_reviewer_jwt: str | None,
    actions: list[str],
) -> None:
    with vault_call("list auth methods", "sys/auth"):
        mounted: dict[str, Any] = api.sys.list_auth_methods()["data"]
    for entry in _entries(config, "auth"):
        kind = str(entry.get("type") or "")
        path = _mount_path(entry, "auth")
        existing = mounted.get(f"{path}/")
        if existing is None:
            with vault_call("enable auth method", f"sys/auth/{path}"):
                api.sys.enable_auth_method(kind, path=path, description=entry.get("description"))
            actions.append(f"auth method {kind} enabled at auth/{path}/")
        elif existing.get("type") != kind:
            raise VaultOperationError("enable auth method", f"sys/auth/{path}", reason="path used by another type")
        else:
            actions.append(f"auth method {kind} already enabled at auth/{path}/")
        wanted = dict(entry.get("config") or {})
        if kind == "kubernetes":
            # The sandbox's API server is the cluster: no pod token or CA file to fall back on (FACTS 8).
            defaults = {
                "kubernetes_host": kubernetes_host,
                "kubernetes_ca_cert": kubernetes_ca_pem,
                "disable_local_ca_jwt": True,
            }
            if token_reviewer_jwt:
                # Bank-Vaults fills in the configurer pod's own service-account token: OpenBao then sends
                # TokenReviews as that service account, which needs system:auth-delegator.
                defaults["token_reviewer_jwt"] = token_reviewer_jwt
            wanted = {**defaults, **wanted}
        if wanted:
            config_path = f"auth/{path}/config"
            if _covers(wanted, _read(api, "read auth config", config_path), {}):
                actions.append(f"{config_path} unchanged")
            else:
                _write(api, "write auth config", config_path, wanted)
                actions.append(f"{config_path} written")
        _users(api, entry, path, actions)
        for index, role in enumerate(entry.get("roles") or []):
            name = role.get("name") if isinstance(role, Mapping) else None
            if not name:
                raise ValueError(f"externalConfig.auth[{path}].roles[{index}] needs a name")
            fields = {k: v for k, v in role.items() if k != "name"}
            role_path = f"auth/{path}/role/{name}"
            if _covers(fields, _read(api, "read auth role", role_path), _ROLE_ALIASES):
                actions.append(f"role {name} unchanged at {role_path}")
            else:
                _write(api, "write auth role", role_path, fields)
                actions.append(f"role {name} written at {role_path}")


def _users(api: Any, entry: Mapping[str, Any], path: str, actions: list[str]) -> None:
    """userpass `users`: each written to auth/<path>/users/<username> (passwords are never read back)."""
    for index, user in enumerate(entry.get("users") or []):
        name = (user.get("username") or user.get("name")) if isinstance(user, Mapping) else None
        if not name:
            raise ValueError(f"externalConfig.auth[{path}].users[{index}] needs a username")
        fields = {k: v for k, v in user.items() if k not in ("username", "name")}
        user_path = f"auth/{path}/users/{name}"
        if "password" not in fields and _covers(fields, _read(api, "read user", user_path), _ROLE_ALIASES):
            actions.append(f"user {name} unchanged at {user_path}")
        else:
            _write(api, "write user", user_path, fields)
            actions.append(f"user {name} written at {user_path}")


def _engine_configuration(api: Any, entry: Mapping[str, Any], kind: str, path: str, actions: list[str]) -> None:
    """A mount's `configuration`: option -> entries, each written to <path>/<option>[/<name>]."""
    configuration = entry.get("configuration") or {}
    if not isinstance(configuration, Mapping):
        raise ValueError(f"externalConfig.secrets[{path}].configuration must be an object")
    if kind in EXTERNAL_SERVICE_ENGINES:
        service = EXTERNAL_SERVICE_ENGINES[kind]
        actions.append(f"secrets {path}/ configuration needs {service}, which the sandbox lacks; skipped")
        return
    for option, items in configuration.items():
        for index, item in enumerate(items if isinstance(items, list) else [items]):
            if not isinstance(item, Mapping):
                raise ValueError(f"externalConfig.secrets[{path}].configuration.{option}[{index}] must be an object")
            name = item.get("name")
            target = f"{path}/{option}/{name}" if name else f"{path}/{option}"
            fields = {k: v for k, v in item.items() if k != "name"}
            exists_at = GENERATE_ONCE.get(str(option))
            if exists_at is not None:
                existing = _read_or_none(api, "read generated", f"{path}/{exists_at}")
                if existing and existing.get("certificate"):
                    actions.append(f"{target} already generated")
                    continue
            elif _covers(fields, _read_or_none(api, "read configuration", target), _ROLE_ALIASES):
                actions.append(f"{target} unchanged")
                continue
            _write(api, "write configuration", target, fields)
            actions.append(f"{target} written")


def _engine_label(kind: str, options: Mapping[str, Any]) -> str:
    version = str(options.get("version", "1"))
    return f"kv-v{version}" if kind == "kv" else kind


def _wait_kv_v2_ready(api: Any, path: str, timeout: float = 10.0) -> None:
    """A fresh kv-v2 mount answers 400 ("Upgrading from non-versioned to versioned data") for a few ms."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            _read(api, "read kv-v2 config", f"{path}/config")
            return
        except VaultOperationError as exc:
            if exc.status != 400 or time.monotonic() >= deadline:
                raise
        time.sleep(0.02)


def _secrets(api: Any, config: Mapping[str, Any], actions: list[str]) -> None:
    with vault_call("list secrets engines", "sys/mounts"):
        mounted: dict[str, Any] = api.sys.list_mounted_secrets_engines()["data"]
    for entry in _entries(config, "secrets"):
        kind = str(entry.get("type") or "")
        path = _mount_path(entry, "secrets")
        options = {k: str(v) for k, v in dict(entry.get("options") or {}).items()}
        label = _engine_label(kind, options)
        existing = mounted.get(f"{path}/")
        if existing is None:
            try:
                with vault_call("enable secrets engine", f"sys/mounts/{path}"):
                    api.sys.enable_secrets_engine(
                        kind,
                        path=path,
                        description=entry.get("description"),
                        config=entry.get("config"),
                        options=options or None,
                    )
            except VaultOperationError as exc:
                if exc.status != 400:
                    raise
                reason = f"HTTP 400: no secrets engine of type {kind!r} in OpenBao's plugin catalog"
                raise VaultOperationError(exc.operation, exc.path, 400, reason) from None
            actions.append(f"{label} enabled at {path}/")
        elif existing.get("type") != kind:
            raise VaultOperationError("enable secrets engine", f"sys/mounts/{path}", reason="path used by another type")
        elif options and not _covers(options, existing.get("options") or {}, {}):
            with vault_call("tune secrets engine", f"sys/mounts/{path}/tune"):
                api.sys.tune_mount_configuration(path, options=options)
            actions.append(f"{label} options tuned at {path}/")
        else:
            actions.append(f"{label} already enabled at {path}/")
        if label == "kv-v2":
            _wait_kv_v2_ready(api, path)
        if entry.get("configuration"):
            _engine_configuration(api, entry, kind, path, actions)


def _startup_secrets(api: Any, config: Mapping[str, Any], actions: list[str]) -> None:
    for index, entry in enumerate(_entries(config, "startupSecrets")):
        path = str(entry.get("path") or "").strip("/")
        data = entry.get("data")
        if entry.get("type") != "kv":
            actions.append(f"startup secret {path or index} of type {entry.get('type')} not simulated; skipped")
            continue
        if not path or not isinstance(data, Mapping) or not data:
            raise ValueError(f"externalConfig.startupSecrets[{index}] needs a path and data")
        # For KV v2 the path holds data/ and `data` is {data: {...}}; a read answers {data: {...}, metadata}.
        if _covers(data, _read(api, "read startup secret", path), {}):
            actions.append(f"startup secret unchanged at {path}")
        else:
            _write(api, "write startup secret", path, data)
            actions.append(f"startup secret written to {path}")


def _groups(api: Any, config: Mapping[str, Any], actions: list[str]) -> None:
    """`groups` as identity groups by name; `group-aliases` tie an external group to an auth mount's group."""
    for index, group in enumerate(_entries(config, "groups")):
        name = group.get("name")
        if not name:
            raise ValueError(f"externalConfig.groups[{index}] needs a name")
        fields = {k: v for k, v in group.items() if k != "name"}
        group_path = f"identity/group/name/{name}"
        if _covers(fields, _read(api, "read group", group_path), {}):
            actions.append(f"group {name} unchanged")
        else:
            _write(api, "write group", group_path, fields)
            actions.append(f"group {name} written")
    aliases = _entries(config, "group-aliases")
    if not aliases:
        return
    with vault_call("list auth methods", "sys/auth"):
        mounted: dict[str, Any] = api.sys.list_auth_methods()["data"]
    for index, alias in enumerate(aliases):
        name, mount, group_name = alias.get("name"), str(alias.get("mountpath") or "").strip("/"), alias.get("group")
        if not name or not mount or not group_name:
            raise ValueError(f"externalConfig.group-aliases[{index}] needs a name, mountpath and group")
        accessor = (mounted.get(f"{mount}/") or {}).get("accessor")
        target = _read(api, "read group", f"identity/group/name/{group_name}")
        if accessor is None or target is None:
            missing = f"auth mount {mount}/" if accessor is None else f"group {group_name}"
            raise ValueError(f"externalConfig.group-aliases[{index}]: {missing} does not exist")
        current = target.get("alias") or {}
        if current.get("name") == name and current.get("mount_accessor") == accessor:
            actions.append(f"group alias {name} unchanged")
            continue
        body = {"name": name, "mount_accessor": accessor, "canonical_id": target["id"]}
        _write(api, "write group alias", "identity/group-alias", body)
        actions.append(f"group alias {name} written")


def configure(
    address: str,
    ca_file: Path | str,
    root_token: str,
    external_config: Mapping[str, Any],
    kubernetes_host: str,
    kubernetes_ca_pem: str,
    token_reviewer_jwt: str | None = None,
) -> list[str]:
    """Apply `externalConfig` (policies, auth, secrets, startupSecrets); returns the actions, without values.

    `token_reviewer_jwt` is what Kubernetes auth presents to the API server's TokenReview (without it,
    OpenBao presents the logging-in client's own token)."""
    api = vault_client(address, ca_file, token=root_token)
    actions: list[str] = []
    _auth(api, external_config, kubernetes_host, kubernetes_ca_pem, token_reviewer_jwt, actions)
    _policies(api, external_config, actions)
    # Engines before startup secrets: a secret needs its mount.
    _secrets(api, external_config, actions)
    _startup_secrets(api, external_config, actions)
    _groups(api, external_config, actions)
    for key in external_config:
        if key not in HANDLED:
            actions.append(f"externalConfig.{key} not simulated; skipped")
    return actions
