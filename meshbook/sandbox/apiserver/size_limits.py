"""The size rules kube-apiserver's validation applies to an object's data: ConfigMaps and Secrets hold
at most 1 MiB (`core.MaxSecretSize`), counted over the values (decoded for Secrets and binaryData).

The wording of `field.TooLong` changed in Kubernetes 1.32 (apimachinery v0.32), so it is data keyed
by the served minor version. Larger objects still pass here when their kind has no such rule; the
store refuses what etcd would (`storage.store.ETCD_MAX_REQUEST_BYTES`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from meshbook.sandbox.storage.store import Object, StoreError

MAX_DATA_BYTES = 1024 * 1024  # core.MaxSecretSize, shared by Secrets and ConfigMaps

# First minor version with each wording of field.TooLong's message, newest first.
TOO_LONG_WORDING: tuple[tuple[int, str], ...] = (
    (32, "may not be more than {limit} bytes"),
    (0, "must have at most {limit} bytes"),
)


def _decoded_length(value: Any) -> int:
    try:
        return len(base64.b64decode(str(value), validate=True))
    except (binascii.Error, ValueError):
        return len(str(value).encode())  # not base64: the validation helper reports it; count it as is


def _configmap_bytes(obj: Object) -> int:
    text = sum(len(str(v).encode()) for v in (obj.get("data") or {}).values())
    return text + sum(_decoded_length(v) for v in (obj.get("binaryData") or {}).values())


def _secret_bytes(obj: Object) -> int:
    return sum(_decoded_length(v) for v in (obj.get("data") or {}).values())


# kind -> (the field the error names, the bytes counted); ConfigMap errors name the whole object ("[]").
DATA_SIZE_RULES: dict[str, tuple[str, Callable[[Object], int]]] = {
    "ConfigMap": ("[]", _configmap_bytes),
    "Secret": ("data", _secret_bytes),
}


def too_long_message(limit: int, minor: int) -> str:
    wording = next(text for since, text in TOO_LONG_WORDING if minor >= since)
    return "Too long: " + wording.format(limit=limit)


def check_data_size(kind: str, obj: Object, minor: int) -> None:
    """Raise the 422 kube-apiserver gives a ConfigMap or Secret whose data is over 1 MiB."""
    rule = DATA_SIZE_RULES.get(kind)
    if rule is None:
        return
    field, measure = rule
    if measure(obj) <= MAX_DATA_BYTES:
        return
    name = str(obj.get("metadata", {}).get("name", ""))
    message = too_long_message(MAX_DATA_BYTES, minor)
    raise StoreError(
        "Invalid",
        422,
        f'{kind} "{name}" is invalid: {field}: {message}',
        {"name": name, "kind": kind, "causes": [{"reason": "FieldValueTooLong", "message": message, "field": field}]},
    )
