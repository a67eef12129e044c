"""Official-client ApiClients for a kubeconfig and context, with errors that say what to fix."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from meshbook.errors import ParameterError


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
