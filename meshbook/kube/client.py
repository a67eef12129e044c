"""Official-client ApiClients for a kubeconfig and context, with errors that say what to fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from meshbook.errors import ParameterError

# The API groups meshbook calls. The official client imports each API class (and the models it names,
# pydantic classes built at import) on first use: up to 0.6 s for CoreV1Api.
API_CLASSES = (
    "CoreV1Api",
    "AppsV1Api",
    "BatchV1Api",
    "CustomObjectsApi",
    "VersionApi",
    "AuthorizationV1Api",
    "AdmissionregistrationV1Api",
)


def load_api_classes() -> None:
    """Import every class of `API_CLASSES` now, e.g. in a kernel before its notebook or in the runner
    while notebooks run, so that the first call does not pay for it."""
    for name in API_CLASSES:
        getattr(client, name)


def api_client(kubeconfig: str | Path | None = None, context: str | None = None) -> client.ApiClient:
    """An ApiClient for `context` of `kubeconfig` (default: $KUBECONFIG or ~/.kube/config)."""
    try:
        made = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig) if kubeconfig else None, context=context
        )
        return cast(client.ApiClient, made)
    except ConfigException as exc:
        where = f"kubeconfig {kubeconfig}" if kubeconfig else "the default kubeconfig ($KUBECONFIG or ~/.kube/config)"
        what = f"context {context!r}" if context else "its current context"
        raise ParameterError([f"{where}: cannot use {what}: {exc}"]) from None
    except FileNotFoundError:
        raise ParameterError([f"kubeconfig {kubeconfig}: file not found"]) from None


def api_message(exc: ApiException) -> str:
    """The API server's own message from an error response (its Status), else the HTTP reason."""
    try:
        message = json.loads(exc.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return f"{message or exc.reason} (HTTP {exc.status})"
