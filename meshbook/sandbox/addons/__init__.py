"""Behaviour that hangs off the objects an Istio and Bank-Vaults install creates.

`install_addons` plugs them into a sandbox: the mutating-webhook dispatcher (Istio's injector and the
Bank-Vaults webhook as backends), the program resolver for well-known containers, and the controllers
(the Bank-Vaults operator, istiod's root-certificate ConfigMaps). None of them acts until the objects
it depends on exist, exactly as on a real cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meshbook.sandbox.addons.istio import IstioInjectorBackend, RootCertController
from meshbook.sandbox.addons.mesh_view import judge_webhook_call
from meshbook.sandbox.addons.programs import resolve_program
from meshbook.sandbox.addons.vault_operator import VaultOperatorController
from meshbook.sandbox.addons.vault_webhook import VaultSecretsWebhookBackend
from meshbook.sandbox.addons.webhooks import WebhookBackend, WebhookDispatcher

if TYPE_CHECKING:
    from meshbook.sandbox.server import Sandbox


def install_addons(sandbox: Sandbox) -> None:
    core = sandbox.core
    backends: dict[tuple[str, str], WebhookBackend] = {
        ("istiod", "/inject"): IstioInjectorBackend(core),
        ("vault-secrets-webhook", "/pods"): VaultSecretsWebhookBackend(core),
    }
    core.admission.mutators.append(
        WebhookDispatcher(core, backends, lambda ns, svc, port: judge_webhook_call(sandbox, ns, svc, port))
    )
    sandbox.kubelet.resolvers.append(resolve_program)
    sandbox.controllers.add(VaultOperatorController(core, sandbox.config.speed))
    sandbox.controllers.add(RootCertController(core, sandbox.config.speed))
    sandbox.kubelet.services.update(core=core, state_dir=sandbox.config.state_dir, kubelet=sandbox.kubelet)
