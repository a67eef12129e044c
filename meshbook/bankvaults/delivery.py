"""Did a container get its secret? Judged from its log, recorded without the value.

The guide proves delivery by printing the secret (`echo $AWS_SECRET_ACCESS_KEY`). meshbook reads the
same log but keeps only booleans and a keyed fingerprint (HMAC-SHA256 with a key kept outside the evidence
bundle), so an auditor can correlate runs without the bundle ever holding, or allowing a dictionary
attack on, the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from meshbook.bankvaults.secret_value import SecretValue
from meshbook.errors import MeshbookError
from meshbook.evidence import fingerprint as evidence_fingerprint
from meshbook.evidence.payloads import SecretDeliveryExpected, SecretDeliveryObserved

__all__ = ["MIN_FINGERPRINT_KEY_BYTES", "SecretDelivery", "check_secret_delivery", "fingerprint", "reference"]

MIN_FINGERPRINT_KEY_BYTES = 16
"""Shorter keys would let anyone holding the evidence brute-force short secrets from their fingerprints."""


def reference(path: str, key: str) -> str:
    """The env value the webhook resolves: `vault:PATH#KEY` (what an unmutated container prints)."""
    return f"vault:{path}#{key}"


def fingerprint(value: SecretValue, key: bytes) -> str:
    """HMAC-SHA256 (hex) of the value under `key`: stable per key, useless without it."""
    if not isinstance(value, SecretValue):
        raise TypeError("fingerprint() takes a SecretValue, so plain secrets never travel as str")
    if len(key) < MIN_FINGERPRINT_KEY_BYTES:
        raise MeshbookError(
            f"the fingerprint key must be at least {MIN_FINGERPRINT_KEY_BYTES} bytes (got {len(key)}); "
            "keep it outside the evidence bundle"
        )
    return evidence_fingerprint(value.reveal(), key)


@dataclass(frozen=True)
class SecretDelivery:
    """One container's secret delivery, as evidence: names, booleans and a keyed fingerprint only.

    `delivered`: a log line is exactly the expected value. `matches_vault`: it is delivered and the
    expected value is what Vault holds now (differs after a rotation). `literal_reference`: a line is the
    literal `vault:PATH#KEY[#VERSION]`, i.e. the webhook did not mutate the container. `fingerprint` is
    the expected value's; the record's observed fingerprint is only ever that of a value the container
    showed, so a failed delivery can never carry the same fingerprint as a successful one.
    """

    container: str
    path: str
    key: str
    delivered: bool
    matches_vault: bool
    literal_reference: bool
    fingerprint: str

    @property
    def reference(self) -> str:
        return reference(self.path, self.key)

    def observed(self) -> dict[str, Any]:
        """The `observed` payload of this delivery's secret_delivery record, checked and shaped by its model:
        the fingerprint of what the container showed (None when it showed no value, or only the literal
        reference)."""
        payload = SecretDeliveryObserved(
            container=self.container,
            path=self.path,
            key=self.key,
            delivered=self.delivered,
            matches_vault=self.matches_vault,
            fingerprint=self.fingerprint if self.delivered else None,
            literal_reference=self.literal_reference,
        )
        return payload.model_dump(mode="json", exclude={"deciding_object"})  # the check adds it, from the model

    def expected(self) -> dict[str, Any]:
        """The `expected` payload: delivered, matching Vault, and the expected value's fingerprint."""
        payload = SecretDeliveryExpected(
            container=self.container, delivered=True, matches_vault=True, fingerprint=self.fingerprint
        )
        return payload.model_dump(mode="json", exclude_none=True)


def _has_value_line(text: str, value: str) -> bool:
    """Whether `value` (possibly multi-line) occupies whole lines of `text`."""
    if not value:
        return False  # an empty secret cannot be told apart from a blank line
    return f"\n{value}\n" in f"\n{text}\n"


def _normalise(log_text: str) -> str:
    return "\n".join(log_text.splitlines())


def check_secret_delivery(
    log_text: str,
    expected: SecretValue,
    *,
    container: str,
    path: str,
    key: str,
    fingerprint_key: bytes,
    vault_now: SecretValue | None = None,
) -> SecretDelivery:
    """Judge one container's log against the secret it should have printed.

    `expected` is the value the container should show (normally what `VaultAccess.read_secret` returns);
    `vault_now` is Vault's current value when it may differ from `expected` (what-if rotations), else the
    expected value is taken to be Vault's.
    """
    text = _normalise(log_text)
    delivered = _has_value_line(text, expected.reveal())
    current = expected if vault_now is None else vault_now
    matches_vault = delivered and current == expected
    literal = re.compile(rf"^{re.escape(reference(path, key))}(#\d+)?$")
    literal_reference = any(literal.match(line.strip()) for line in text.split("\n"))
    return SecretDelivery(
        container=container,
        path=path,
        key=key,
        delivered=delivered,
        matches_vault=matches_vault,
        literal_reference=literal_reference,
        fingerprint=fingerprint(expected, fingerprint_key),
    )
