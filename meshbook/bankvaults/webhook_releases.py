"""What each release of vault-secrets-webhook does that another does not, read from its image tag.

Pure data shared by the sandbox's webhook twin (which behaves as the release it runs) and `meshbook
audit` (which judges a cluster by the release it finds): one home, so the two never disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class WebhookRelease:
    """What one release of vault-secrets-webhook does that another does not."""

    checks_pod_vault_addr: bool  # a pod's `vault-addr` annotation must pass the allowlist (else HTTP 500)


# Behaviour by the first release that has it, newest first. Up to v1.23.1 an object's `vault-addr` is
# checked only where the webhook itself calls Vault (Secrets, ConfigMaps, custom objects, in
# `newVaultClient`), so a pod with another address is mutated; upstream main checks pods too
# (bank-vaults/vault-secrets-webhook#972, in no release yet). When a release ships it, add its row.
RELEASES: tuple[tuple[tuple[int, ...], WebhookRelease], ...] = (((), WebhookRelease(checks_pod_vault_addr=False)),)
UNRELEASED = WebhookRelease(checks_pod_vault_addr=True)  # an image tag that is no version: main, latest, a sha
_VERSION_TAG = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


def release_of(image: str) -> WebhookRelease:
    """The behaviour of the webhook image `image` (`...:v1.23.1`, `...:main`, `...@sha256:...`); with no
    webhook Deployment to read (`image` empty), the newest release's."""
    if not image:
        return RELEASES[0][1]
    reference = image.split("@", 1)[0]
    tag = reference.rsplit(":", 1)[1] if ":" in reference.rsplit("/", 1)[-1] else "latest"
    match = _VERSION_TAG.fullmatch(tag)
    if match is None:
        return UNRELEASED
    version = tuple(int(part) for part in match.groups())
    return next(release for since, release in RELEASES if version >= since)
