"""The vault-secrets-webhook's check of a Vault address taken from an object's `vault-addr` annotation.

The address must be http(s), with a host, no credentials, query or fragment, listed in the allowlist
(compared as scheme, host and path, case-folded, without a trailing slash); metadata hosts are never
allowed, and IP literals in private, loopback, link-local or shared (100.64/10) ranges only with
`VAULT_ALLOW_PRIVATE_ADDR`. Messages are the webhook's own (pkg/common/addr.go, v1.23.1). Which objects
the check guards depends on the release (`meshbook/bankvaults/webhook_releases.py`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import SplitResult, urlsplit

METADATA_HOSTS = frozenset({"localhost", "metadata.google.internal"})
# Go's IP.IsPrivate ranges plus the shared address space (RFC 6598, used by some clouds' metadata).
_PRIVATE = tuple(
    ipaddress.ip_network(net) for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "100.64.0.0/10")
)


def _normalized(address: str) -> str:
    try:
        parts = urlsplit(address.strip())
    except ValueError:
        return address.strip().lower()
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.removesuffix('/')}"


def _looks_numeric(host: str) -> bool:
    """Hex, octal or dotted-decimal forms an OS resolver may still read as an address."""
    if host.lower().startswith("0x"):
        return True
    return any(c.isdigit() for c in host) and all(c.isdigit() or c == "." for c in host)


def _ip_problem(host: str) -> str | None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return f'has an ambiguous numeric IP literal host "{host}"' if _looks_numeric(host) else None
    link_local_multicast = ip in ipaddress.ip_network("224.0.0.0/24" if ip.version == 4 else "ff02::/16")
    private = any(ip.version == net.version and ip in net for net in _PRIVATE)
    if ip.is_loopback or ip.is_link_local or link_local_multicast or private or ip.is_unspecified:
        return f'targets a loopback, link-local, private, or shared-address-space host "{host}"'
    return None


def _shape_problem(address: str, parts: SplitResult) -> str | None:
    if parts.scheme.lower() not in ("http", "https"):
        return f'address "{address}" has unsupported scheme "{parts.scheme}" (only http and https are allowed)'
    if not parts.hostname:
        return f'address "{address}" has no host'
    if "@" in parts.netloc:
        return f'address "{address}" must not contain user credentials'
    if parts.query or parts.fragment or "?" in address:
        return f'address "{address}" must not contain a query string or fragment'
    return None


def object_addr_problem(address: str, allowlist: Sequence[str], allow_private: bool) -> str | None:
    """Why the webhook refuses `address` from an object annotation, or None when it accepts it."""
    address = address.strip()
    if not address:
        return "address is empty"
    try:
        parts = urlsplit(address)
        parts.port  # noqa: B018 - parses the port, raising on a malformed one as Go's url.Parse does
    except ValueError as exc:
        return f'malformed address "{address}": {exc}'
    problem = _shape_problem(address, parts)
    if problem is not None:
        return problem
    if _normalized(address) not in {_normalized(entry) for entry in allowlist if entry.strip()}:
        return f'address "{address}" is not in the configured allowlist'
    host = parts.hostname or ""
    if host.lower() in METADATA_HOSTS:
        return f'address "{address}" targets a metadata host, which is never allowed'
    ip_problem = None if allow_private else _ip_problem(host)
    return f'address "{address}": {ip_problem}' if ip_problem else None
