"""What the node offers the programs it runs, beyond their own pod: typed, so a plug-in sees what it gets.

On a real node these are the API server a container can call, the files the kubelet keeps, the network
between pods and the projected service-account tokens; here they are the in-process equivalents.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from meshbook.sandbox.apiserver.serviceaccounts import TokenService
from meshbook.sandbox.apiserver.verbs import ApiCore


class PodNetwork(Protocol):
    """Where a pod's port really listens (the host address behind the pod IP), if anything listens."""

    def backing_address(self, pod_uid: str, port: int) -> tuple[str, int] | None: ...


@dataclass
class NodeServices:
    core: ApiCore
    state_dir: Path
    tokens: TokenService
    network: PodNetwork
    # What in-cluster clients (OpenBao's kubernetes auth) use to reach the API server; set once it serves.
    apiserver_url: str = ""
    apiserver_ca_pem: str = ""
    # Add-ons' own long-lived state (e.g. the OpenBao servers behind Vault pods), by add-on name.
    addon_state: dict[str, Any] = field(default_factory=dict)
    # emptyDir volumes' files a program wrote, by (pod uid, volume name): path in the volume -> text.
    empty_dirs: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    def secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """A Secret's decoded data, read from the store (what a mounted Secret volume holds)."""
        rt = self.core.registry.lookup("", "v1", "secrets")
        assert rt is not None
        secret = self.core.store.get(rt, namespace, name)
        if secret is None:
            return None
        return {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
