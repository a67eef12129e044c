"""Evidence that cannot be misread: what each container received next to what it should have, and why
pods restarted.

A delivery row shows the expected value's fingerprint and the observed one side by side; the observed
one is only ever the fingerprint of a value the container showed, else "literal reference" (the webhook
did not mutate it: it printed `vault:PATH#KEY`) or "nothing delivered". Records from before the expected
fingerprint was recorded show "not recorded" there. A restart is explained when the evidence shows the
expected cause (vault-env could not get a Vault token before the pod's istio-proxy was ready, and the pod
then became Ready) and flagged otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "LITERAL_REFERENCE",
    "NOTHING_DELIVERED",
    "DeliveryVerdict",
    "RestartNote",
    "delivery_verdict",
    "restart_notes",
]

Row = Mapping[str, Any]

LITERAL_REFERENCE = "literal reference (vault:… printed: not mutated)"
NOTHING_DELIVERED = "nothing delivered"
NOT_RECORDED = "not recorded"


@dataclass(frozen=True)
class DeliveryVerdict:
    """A delivery row as a reader needs it: the two fingerprints and a one-phrase verdict."""

    expected: str
    observed: str
    verdict: str
    ok: bool


def delivery_verdict(row: Row) -> DeliveryVerdict:
    """Expected and observed fingerprints and the verdict of one delivery row (`rows.delivery_rows`)."""
    expected = str(row.get("expected_fingerprint") or NOT_RECORDED)
    if row.get("delivered") is None:
        return DeliveryVerdict(expected, "container did not run", "not delivered: the container never ran", False)
    if row.get("delivered"):
        observed = str(row.get("fingerprint") or NOT_RECORDED)
        if row.get("expected_fingerprint") and observed != expected:
            return DeliveryVerdict(expected, observed, "a different value was delivered", False)
        if row.get("matches_vault") is False:
            return DeliveryVerdict(expected, observed, "delivered, but Vault holds another value now", False)
        return DeliveryVerdict(expected, observed, "delivered, matches Vault", True)
    if row.get("literal_reference"):
        return DeliveryVerdict(expected, LITERAL_REFERENCE, "not delivered: the webhook did not mutate it", False)
    return DeliveryVerdict(expected, NOTHING_DELIVERED, "not delivered", False)


@dataclass(frozen=True)
class RestartNote:
    """Why a pod's containers restarted: `expected` when the evidence shows the known, harmless cause."""

    text: str
    expected: bool


def _container_note(pod: Row, restart: Row) -> RestartNote:
    name, count = restart.get("container"), restart.get("restarts")
    ended = f"exit code {restart.get('exit_code')}" + (f", {restart['reason']}" if restart.get("reason") else "")
    running = pod.get("status") == "Running" and pod.get("outcome") != "fail"
    if restart.get("vault_env_token_failed") and pod.get("sidecar") and running:
        return RestartNote(
            f"{name} restarted {count}x, expected: it waited for the proxy (vault-env could not reach Vault "
            f"before istio-proxy was ready, {ended}; holdApplicationUntilProxyStarts avoids it)",
            True,
        )
    if restart.get("vault_env_token_failed"):
        return RestartNote(
            f"{name} restarted {count}x, unexpected: vault-env could not get a Vault token ({ended})", False
        )
    return RestartNote(f"{name} restarted {count}x, unexpected ({ended})", False)


def restart_notes(pod: Row) -> list[RestartNote]:
    """One note per restarted container; one flagged note when restarts were counted but not explained."""
    restarts = int(pod.get("restarts") or 0)
    listed = [r for r in pod.get("restarted") or [] if isinstance(r, Mapping)]
    if restarts == 0 and not listed:
        return []
    if not listed:
        return [RestartNote(f"{restarts} restart(s), unexplained: which container and why was not recorded", False)]
    return [_container_note(pod, r) for r in listed]
