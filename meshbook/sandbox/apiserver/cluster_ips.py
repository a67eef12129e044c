"""ClusterIP allocation for Services from the service CIDR, as the Service registry does it.

Allocation happens after validation and just before the object is stored (no await in between, so two
creates cannot take one address). Which addresses are taken is read from the stored Services
themselves, so an address is released the moment its Service leaves the store and a restarted
sandbox knows its allocations without a separate bitmap. A Service without a requested address gets
one derived from its namespace and name (stable across runs, spread like the real random pick) in
the upper part of the range; the lower band is left to requested addresses, as kube-apiserver's
static subrange does. `kubernetes` in `default` takes the first address, 10.96.0.1.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterator
from typing import Any

from meshbook.sandbox.storage.resources import ResourceType
from meshbook.sandbox.storage.store import Object, Store, StoreError

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
HEADLESS = "None"
# kube-apiserver's static band: min(max(16, size/16), 256) addresses at the bottom of the range.
_STATIC_BAND = min(max(16, SERVICE_CIDR.num_addresses // 16), 256)
_FIRST, _LAST = 1, SERVICE_CIDR.num_addresses - 2  # offsets; network and broadcast are never handed out


def _go_strings(values: list[str]) -> str:
    """How the API server prints a []string in a field error (Go's %#v)."""
    return "[]string{" + ", ".join(f'"{v}"' for v in values) + "}"


def service_field_invalid(name: str, field: str, value: Any, message: str) -> StoreError:
    """The 422 for one field of Service `name`, its value already shown as Go prints it."""
    text = f"Invalid value: {value}: {message}"
    return StoreError(
        "Invalid",
        422,
        f'Service "{name}" is invalid: {field}: {text}',
        {"name": name, "kind": "Service", "causes": [{"reason": "FieldValueInvalid", "message": text, "field": field}]},
    )


class ServiceIPAllocator:
    """Fills `spec.clusterIP(s)`, `ipFamilies` and `ipFamilyPolicy` of Services on create and update."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _taken(self, rt: ResourceType, owner: tuple[str, str]) -> set[str]:
        taken: set[str] = set()
        for svc in self.store.list(rt):
            meta = svc["metadata"]
            if (meta.get("namespace", ""), meta["name"]) == owner:
                continue
            spec = svc.get("spec") or {}
            taken.update(ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and ip != HEADLESS)
        return taken

    def _candidates(self, owner: tuple[str, str]) -> Iterator[str]:
        """Dynamic addresses: the upper band from a point derived from the Service's key, then the rest."""
        upper = _LAST - _STATIC_BAND
        start = int.from_bytes(hashlib.sha256("/".join(owner).encode()).digest()[:8], "big") % upper
        for step in range(upper):
            yield str(SERVICE_CIDR[_STATIC_BAND + 1 + (start + step) % upper])
        for offset in range(_FIRST, _STATIC_BAND + 1):
            yield str(SERVICE_CIDR[offset])

    def allocate(self, rt: ResourceType, obj: Object, old: Object | None) -> None:
        """Give `obj` its addresses (in place), or raise 422 as kube-apiserver words it."""
        spec: dict[str, Any] = obj.setdefault("spec", {})
        meta = obj["metadata"]
        owner = (meta.get("namespace", ""), meta["name"])
        if spec.get("type") == "ExternalName":
            for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
                spec.pop(key, None)
            return
        old_spec = (old or {}).get("spec") or {}
        old_ip = old_spec.get("clusterIP") if old_spec.get("type") != "ExternalName" else None
        requested = spec.get("clusterIP") or (spec.get("clusterIPs") or [""])[0] or ""
        if old_ip and not requested:
            requested = old_ip  # an update that leaves the address out keeps it
        elif old_ip and requested != old_ip:
            raise service_field_invalid(owner[1], "spec.clusterIP", f'"{requested}"', "field is immutable")
        if requested == HEADLESS:
            chosen = HEADLESS
        elif requested:
            chosen = self._check_requested(rt, owner, requested, old_ip)
        else:
            taken = self._taken(rt, owner)
            chosen = next((ip for ip in self._candidates(owner) if ip not in taken), "")
            if not chosen:
                raise StoreError(
                    "InternalError",
                    500,
                    "Internal error occurred: failed to allocate a serviceIP: range is full",
                )
        spec["clusterIP"] = chosen
        spec["clusterIPs"] = [chosen]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")

    def _check_requested(self, rt: ResourceType, owner: tuple[str, str], ip: str, old_ip: str | None) -> str:
        if ip == old_ip:
            return ip
        field, shown = "spec.clusterIPs", _go_strings([ip])
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            raise service_field_invalid(owner[1], "spec.clusterIP", f'"{ip}"', "must be a valid IP address") from None
        offset = int(address) - int(SERVICE_CIDR.network_address)
        if address.version != 4 or not _FIRST <= offset <= _LAST:
            raise service_field_invalid(
                owner[1],
                field,
                shown,
                f"failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. "
                f"The range of valid IPs is {SERVICE_CIDR}",
            )
        if ip in self._taken(rt, owner):
            raise service_field_invalid(
                owner[1], field, shown, f"failed to allocate IP {ip}: provided IP is already allocated"
            )
        return ip
