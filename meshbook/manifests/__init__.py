"""meshbook's own manifests for the guide, rendered from parameters as plain dicts.

Each named manifest replaces a file or heredoc of the guide (its links rbac.yaml, cr-istio.yaml, app.yaml
and the removed Istio policies), rebuilt from FACTS 1-5 rather than copied. Whether a manifest is applied
at all (`bank_vaults.webhook_permissive`, `vault.permissive`) is the runbook's decision; the templates
only follow parameters that change an object's shape.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from meshbook.errors import ParameterError
from meshbook.manifests._objects import MANAGED_BY, Manifest, to_yaml
from meshbook.manifests.app import app, pod_annotations, vault_reference
from meshbook.manifests.auditor import auditor_rbac
from meshbook.manifests.mesh import (
    mesh_mtls,
    namespace,
    peer_authentication,
    vault_permissive,
    webhook_permissive,
)
from meshbook.manifests.vault import (
    BANK_VAULTS_IMAGE,
    DEMO_STARTUP_SECRETS,
    VAULT_IMAGE,
    file_volume_claim,
    kv_mount,
    rbac,
    vault_addr,
    vault_cr,
    vault_custom_resource,
)
from meshbook.params import RunbookParams

Builder = Callable[[RunbookParams], list[Manifest]]

_BUILDERS: dict[str, Builder] = {
    "mesh-mtls": mesh_mtls,
    "webhook-permissive": webhook_permissive,
    "rbac": rbac,
    "vault-cr": vault_cr,
    "vault-permissive": vault_permissive,
    "app": app,
    "auditor-rbac": auditor_rbac,  # not the guide's: what `meshbook audit` needs, read-only
}

MANIFEST_NAMES: tuple[str, ...] = tuple(_BUILDERS)
"""Every name `render` accepts, in the order the guide applies them."""


def check_name(name: str) -> str:
    """Return `name` if it is a manifest; otherwise raise ParameterError naming the known ones."""
    if name in _BUILDERS:
        return name
    close = difflib.get_close_matches(name, MANIFEST_NAMES, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ParameterError([f"unknown manifest {name!r}{hint}; known manifests: {', '.join(MANIFEST_NAMES)}"])


def render(name: str, params: RunbookParams) -> list[Manifest]:
    """The objects of manifest `name` for these parameters, in the order to apply them."""
    return _BUILDERS[check_name(name)](params)


__all__ = [
    "BANK_VAULTS_IMAGE",
    "DEMO_STARTUP_SECRETS",
    "MANAGED_BY",
    "MANIFEST_NAMES",
    "VAULT_IMAGE",
    "Manifest",
    "app",
    "check_name",
    "file_volume_claim",
    "kv_mount",
    "mesh_mtls",
    "namespace",
    "peer_authentication",
    "pod_annotations",
    "rbac",
    "render",
    "to_yaml",
    "vault_addr",
    "vault_cr",
    "vault_custom_resource",
    "vault_permissive",
    "vault_reference",
    "webhook_permissive",
]
