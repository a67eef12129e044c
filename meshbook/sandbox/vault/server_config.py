"""The Vault CR's `spec.config` translated to the OpenBao the sandbox runs.

Bank-Vaults templates `spec.config` into the server's config file. The sandbox's OpenBao keeps its own
storage (integrated raft storage in the state directory; OpenBao 2.7 has no `file` backend) and its
own listener (TLS on a loopback port the kubelet forwards 8200 to), so those parts cannot apply as
written; everything else that changes what a client sees is passed on. What is not applied is named
(`ServerSettings.not_applied`), for the operator to say on the Vault CR rather than ignore it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Top-level keys passed to OpenBao's config file as written: they change what clients see.
APPLIED_KEYS = frozenset(
    {
        "ui",
        "log_level",
        "log_format",
        "default_lease_ttl",
        "max_lease_ttl",
        "default_max_request_duration",
        "api_addr",
        "cluster_name",
        "disable_cache",
        "raw_storage_endpoint",
        "introspection_endpoint",
        "enable_response_header_hostname",
        "enable_response_header_raft_node_id",
    }
)
# Top-level keys the sandbox cannot honour, and why (keys not listed here nor above: "not supported").
NOT_APPLIED_REASONS: Mapping[str, str] = {
    "cluster_addr": "raft's cluster address is a loopback port the sandbox chooses",
    "disable_mlock": "OpenBao 2.7 has no mlock setting",
    "ha_storage": "the sandbox runs a single raft node, which is its own HA storage",
    "seal": "the sandbox's Bank-Vaults unseals with Shamir keys in a Secret",
    "telemetry": "no telemetry sink runs in the sandbox",
    "service_registration": "the sandbox registers no service for OpenBao",
    "plugin_directory": "the sandbox's OpenBao has no plugin directory",
    "pid_file": "the sandbox keeps its own pid file",
}
# The listener the vault container has in the sandbox: fields set to these values are what it does.
LISTENER_EQUIVALENT: Mapping[str, frozenset[str]] = {
    "address": frozenset({"0.0.0.0:8200", "[::]:8200", ":8200"}),
    "tls_cert_file": frozenset({"/vault/tls/server.crt"}),
    "tls_key_file": frozenset({"/vault/tls/server.key"}),
    "tls_disable": frozenset({"false", "0", "False"}),
}


@dataclass(frozen=True)
class ServerSettings:
    """What of `spec.config` OpenBao gets (`applied`), and what it cannot get, each with the reason."""

    applied: dict[str, Any] = field(default_factory=dict)
    not_applied: list[str] = field(default_factory=list)


def _storage(storage: Any) -> list[str]:
    if not isinstance(storage, Mapping):
        return ["config.storage: expected an object naming one storage backend"]
    return [
        f"config.storage.{backend}: not applied; the sandbox keeps OpenBao's data in integrated storage (raft)"
        for backend in storage
        if backend != "raft"
    ]


def _listeners(listener: Any) -> list[str]:
    entries = listener if isinstance(listener, list) else [listener]
    notes: list[str] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            notes.append("config.listener: expected an object such as {tcp: {...}}")
            continue
        for kind, fields in entry.items():
            if kind != "tcp" or not isinstance(fields, Mapping):
                notes.append(f"config.listener.{kind}: not applied; the sandbox's OpenBao has one TCP listener")
                continue
            for key, value in fields.items():
                allowed = LISTENER_EQUIVALENT.get(key)
                if allowed is None or str(value) not in allowed:
                    shown = f" {value!r}" if key == "address" else ""  # other values are never echoed
                    notes.append(
                        f"config.listener.tcp.{key}:{shown} not applied; the sandbox's OpenBao serves TLS "
                        "with the certificate of Secret <name>-tls on 0.0.0.0:8200"
                    )
    return notes


def server_settings(config: Mapping[str, Any] | None) -> ServerSettings:
    """Split a Vault CR's `spec.config` into what OpenBao's config file gets and what it cannot."""
    settings = ServerSettings()
    for key, value in (config or {}).items():
        if key in APPLIED_KEYS:
            settings.applied[key] = value
        elif key == "storage":
            settings.not_applied.extend(_storage(value))
        elif key == "listener":
            settings.not_applied.extend(_listeners(value))
        else:
            reason = NOT_APPLIED_REASONS.get(key, "the sandbox does not support it")
            settings.not_applied.append(f"config.{key}: not applied; {reason}")
    return settings
