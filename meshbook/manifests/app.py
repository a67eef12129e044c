"""The guide's demo application: prints the secret the webhook injects from Vault (FACTS 2 and 4).

The init container is what the scenarios are about: in a meshed namespace it runs before any sidecar, so
whether it gets the secret depends on the Vault namespace's PeerAuthentication.
"""

from __future__ import annotations

import re

from meshbook.errors import ParameterError
from meshbook.manifests._objects import Manifest, metadata, obj
from meshbook.manifests.vault import TLS_SECRET, vault_addr
from meshbook.params import RunbookParams

ANNOTATION_PREFIX = "vault.security.banzaicloud.io/"
INIT_CONTAINER = "init-ubuntu"
APP_CONTAINER = "app"
INIT_IMAGE = "ubuntu:24.04"
"""Pinned (the guide says `ubuntu`) so a run is repeatable; any image with `sh` works."""
APP_IMAGE = "alpine:3.22"
"""Pinned (the guide says `alpine`) for the same reason."""

_SHELL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def vault_reference(params: RunbookParams) -> str:
    """The env value the webhook replaces: `vault:<KV v2 path>#<key>`."""
    return f"vault:{params.vault.secret_path}#{params.vault.secret_key}"


def _container(name: str, image: str, script: str, params: RunbookParams) -> dict[str, object]:
    key = params.vault.secret_key
    return {
        "name": name,
        "image": image,
        "command": ["sh", "-c", script.format(var=f"${key}")],
        "env": [{"name": key, "value": vault_reference(params)}],
    }


def pod_annotations(params: RunbookParams) -> dict[str, str]:
    """Where vault-env finds Vault and its CA; the role only when it differs from the SA name (the default)."""
    annotations = {
        f"{ANNOTATION_PREFIX}vault-addr": vault_addr(params),
        f"{ANNOTATION_PREFIX}vault-tls-secret": TLS_SECRET,
    }
    if params.vault.role != params.app.service_account:
        annotations[f"{ANNOTATION_PREFIX}vault-role"] = params.vault.role
    return annotations


def app(params: RunbookParams) -> list[Manifest]:
    """Deployment `params.app.name`: one replica, optional init container, both echo the secret."""
    key = params.vault.secret_key
    if not _SHELL_NAME.match(key):
        raise ParameterError(
            [
                f"vault.secret_key: the demo app echoes ${key} from a shell, so it must be a shell variable name "
                f"(letters, digits, underscore; not starting with a digit), got {key!r}"
            ]
        )
    labels = {"app.kubernetes.io/name": params.app.name}
    pod_spec: dict[str, object] = {"serviceAccountName": params.app.service_account}
    if params.app.init_container:
        pod_spec["initContainers"] = [
            _container(INIT_CONTAINER, INIT_IMAGE, "echo {var} && echo initContainers ready", params)
        ]
    pod_spec["containers"] = [
        _container(APP_CONTAINER, APP_IMAGE, "echo {var} && echo going to sleep... && sleep 10000", params)
    ]
    spec = {
        "replicas": 1,
        "selector": {"matchLabels": dict(labels)},
        "template": {"metadata": {"labels": dict(labels), "annotations": pod_annotations(params)}, "spec": pod_spec},
    }
    return [obj("apps/v1", "Deployment", metadata(params.app.name, params.app.namespace, labels), spec=spec)]
