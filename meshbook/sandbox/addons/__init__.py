"""Behaviour that hangs off the objects an Istio and Bank-Vaults install creates.

`install_addons` plugs them into a sandbox: the mutating-webhook dispatcher (Istio's injector and the
Bank-Vaults webhook as backends), the program resolver for well-known containers, and the controllers
(the Bank-Vaults operator, istiod's root-certificate ConfigMaps). None of them acts until the objects
it depends on exist, exactly as on a real cluster.
"""

from __future__ import annotations

from meshbook.param_enums import SandboxSpeed
from meshbook.sandbox.addons.istio import IstioInjectorBackend, RootCertController
from meshbook.sandbox.addons.mesh_view import judge_webhook_call
from meshbook.sandbox.addons.operator_log import OperatorProgram
from meshbook.sandbox.addons.programs import resolve_program
from meshbook.sandbox.addons.vault_cli import resolve_exec_program
from meshbook.sandbox.addons.vault_operator import VaultOperatorController
from meshbook.sandbox.addons.vault_webhook import VaultSecretsWebhookBackend
from meshbook.sandbox.addons.webhook_secrets import VaultObjectsWebhookBackend
from meshbook.sandbox.addons.webhooks import WebhookBackend, WebhookDispatcher
from meshbook.sandbox.apiserver.verbs import ApiCore
from meshbook.sandbox.controllers.manager import ControllerManager
from meshbook.sandbox.node.kubelet import Kubelet


def install_addons(core: ApiCore, kubelet: Kubelet, controllers: ControllerManager, speed: SandboxSpeed) -> None:
    backends: dict[tuple[str, str], WebhookBackend] = {
        ("istiod", "/inject"): IstioInjectorBackend(core),
        ("vault-secrets-webhook", "/pods"): VaultSecretsWebhookBackend(core),
        ("vault-secrets-webhook", "/secrets"): VaultObjectsWebhookBackend(kubelet.services),
        ("vault-secrets-webhook", "/configmaps"): VaultObjectsWebhookBackend(kubelet.services),
    }
    core.admission.mutators.append(
        WebhookDispatcher(core, backends, lambda ns, svc, port: judge_webhook_call(core, ns, svc, port))
    )
    operator = VaultOperatorController(core, speed)
    kubelet.resolvers.append(OperatorProgram(operator.log).resolve)
    kubelet.resolvers.append(resolve_program)
    kubelet.exec_programs.append(resolve_exec_program)
    controllers.add(operator)
    controllers.add(RootCertController(core, speed))
