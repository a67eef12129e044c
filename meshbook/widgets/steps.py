"""Each runbook's steps as named callables on its Session: the same calls its cells make, in the same order.

A step's name is the one its cell passes to `rb.step(...)` (tests check the notebooks still say so), so
evidence recorded from the panel is filed under the same step as from the notebook.
"""

from __future__ import annotations

from collections.abc import Callable

from meshbook.audit import notebook as audit
from meshbook.params import RunbookName
from meshbook.runbook.session import Session

Step = Callable[[], object]


def default_steps(session: Session) -> dict[str, Step]:
    """The runbook's steps, in notebook order, bound to `session` (its parameters read when a step runs)."""
    rb = session
    name = RunbookName(rb.context.notebook)

    def seq(*calls: Step) -> Step:
        def run() -> object:
            return [call() for call in calls][-1]

        return run

    if name is RunbookName.AUDIT:  # read-only: each step reads the cluster afresh
        return {
            "discover": lambda: audit.read(rb.step("discover")),
            "findings": lambda: audit.judge(rb.step("findings"), audit.read(rb)),
        }
    if name is RunbookName.PREREQ_ISTIO:
        return {
            "install Istio": lambda: rb.step("install Istio").install_istio(),
            "require mTLS": lambda: rb.step("require mTLS").require_mtls(),
        }
    if name is RunbookName.PREREQ_BANK_VAULTS:
        return {
            "namespace": lambda: rb.step("namespace").namespace(
                rb.params.bank_vaults.namespace, inject=rb.params.bank_vaults.inject_sidecar
            ),
            "webhook PERMISSIVE": lambda: rb.step("webhook PERMISSIVE").allow_webhook(),
            "install Bank-Vaults": lambda: rb.step("install Bank-Vaults").install_bank_vaults(),
        }
    if name is RunbookName.SCENARIO_1:
        return {
            "namespace vault": lambda: rb.step("namespace vault").namespace(rb.params.vault.namespace, inject=False),
            "Vault": lambda: rb.step("Vault").apply("rbac", "vault-cr"),
            "vault PERMISSIVE": lambda: rb.step("vault PERMISSIVE").allow_vault(),
            "namespace app": lambda: rb.step("namespace app").namespace(rb.params.app.namespace, inject=True),
            "app": lambda: rb.step("app").apply("app"),
        }
    if name is RunbookName.SCENARIO_2:
        return {
            "injection": seq(
                lambda: rb.step("injection").auto_inject(rb.params.app.namespace, False),
                lambda: rb.auto_inject(rb.params.vault.namespace, True),
            ),
            "recreate Vault": lambda: rb.step("recreate Vault").recreate_pods(rb.params.vault.namespace),
            "recreate app": lambda: rb.step("recreate app").recreate_pods(rb.params.app.namespace),
        }
    return {
        "injection": seq(
            lambda: rb.step("injection").auto_inject(rb.params.app.namespace, True),
            lambda: rb.auto_inject(rb.params.vault.namespace, True),
        ),
        "recreate pods": seq(
            lambda: rb.step("recreate pods").recreate_pods(rb.params.app.namespace),
            lambda: rb.recreate_pods(rb.params.vault.namespace),
        ),
    }
