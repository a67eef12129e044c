"""What a runbook notebook calls: the guide's steps and the scenario's expectations.

Each step is one short call in a notebook cell. In `mode: apply` steps change the cluster idempotently
(server-side apply); in `mode: check` they only compare the cluster with what the step would apply (a
dry run: no resourceVersion moves) and record drift. Every step and expectation becomes an evidence
record; `finish()` shows the expectations and fails the notebook (exit 1) when one did not hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from meshbook.errors import ExpectationFailed, WaitTimeoutError
from meshbook.evidence import Kind, RecordOutcome
from meshbook.kube.apply import AppliedObject, Applier
from meshbook.manifests import namespace as namespace_manifest
from meshbook.manifests import render
from meshbook.params import Mode, RunbookParams
from meshbook.runbook.checks import ExpectationResult, check_pods_ready, check_secret_delivery
from meshbook.runbook.context import RunContext, params_from_scope

STEP_KINDS = (Kind.ACTION, Kind.NAMESPACE, Kind.MESH_POLICY, Kind.INSTALL)


def start(notebook: str, scope: Mapping[str, Any]) -> Session:
    """Open a runbook session from the notebook's parameter variables (pass `globals()`)."""
    params = params_from_scope(scope)
    return Session(RunContext.open(params, notebook))


class Session:
    def __init__(self, context: RunContext) -> None:
        self.context = context
        self.params: RunbookParams = context.params
        self.applier = Applier(context.api)
        self.outcomes: list[ExpectationResult] = []
        self.step_name = "start"

    # -- bookkeeping ---------------------------------------------------------------------------------

    @property
    def checking(self) -> bool:
        return self.params.mode is Mode.CHECK

    def record(
        self,
        kind: Kind | str,
        subject: str,
        *,
        outcome: RecordOutcome | str,
        expected: Any = None,
        observed: Any = None,
        reason: str = "",
    ) -> None:
        """Write one evidence record (redacted) and keep it for this notebook's `finish()` and the panel."""
        if kind not in list(Kind) or outcome not in list(RecordOutcome):
            raise ValueError(
                f"evidence record {subject!r}: kind {str(kind)!r} must be one of {', '.join(Kind)} and outcome "
                f"{str(outcome)!r} one of {', '.join(RecordOutcome)}; use meshbook.evidence.Kind and RecordOutcome"
            )
        kind, outcome = Kind(kind), RecordOutcome(outcome)
        record = {
            "kind": kind.value,
            "subject": subject,
            "notebook": self.context.notebook,
            "step": self.step_name,
            "expected": expected,
            "observed": observed,
            "outcome": outcome.value,
            "reason": reason,
        }
        if self.context.evidence is not None:
            self.context.evidence.record(
                kind,
                subject,
                notebook=self.context.notebook,
                step=self.step_name,
                expected=expected,
                observed=observed,
                outcome=outcome,
                reason=reason,
            )
        self.context.records.append(self.context.redactor.redact_obj(record))

    def step(self, name: str) -> Session:
        """Name the guide step the following calls belong to (shown in evidence and the report)."""
        self.step_name = name
        return self

    def overview(self) -> pd.DataFrame:
        p = self.params
        rows = [
            ("target", str(p.target)),
            ("cluster", self.context.api.configuration.host),
            ("mode", str(p.mode)),
            ("sidecar mode", str(p.istio.sidecar_mode)),
            ("webhook PERMISSIVE", str(p.bank_vaults.webhook_permissive)),
            ("vault PERMISSIVE", str(p.vault.permissive)),
            ("failure policy", str(p.bank_vaults.pods_failure_policy)),
            ("istioEnabled", str(p.vault.istio_enabled)),
        ]
        return pd.DataFrame(rows, columns=["setting", "value"]).set_index("setting")

    # -- changing the cluster (or, in check mode, comparing) ------------------------------------------

    def apply_objects(self, objects: Sequence[Mapping[str, Any]], what: str) -> list[AppliedObject]:
        applied: list[AppliedObject] = []
        for obj in objects:
            meta = obj["metadata"]
            subject = f"{meta.get('namespace', '')}/{meta['name']}".lstrip("/")
            if self.checking:
                drift = self.applier.drift(obj)
                self.record(
                    Kind.ACTION,
                    subject,
                    outcome=RecordOutcome.FAIL if drift else RecordOutcome.PASS,
                    expected=f"{obj['kind']} as {what} applies it",
                    observed={"drift": drift},
                    reason="; ".join(drift) or "matches",
                )
                continue
            result = self.applier.apply(obj)
            applied.append(result)
            self.record(
                Kind.ACTION,
                subject,
                outcome=RecordOutcome.INFO,
                observed={
                    "kind": result.kind,
                    "applied": what,
                    "resource_version_before": result.resource_version_before,
                    "resource_version_after": result.resource_version_after,
                    "changed": result.changed,
                },
            )
        return applied

    def apply(self, *names: str) -> list[AppliedObject]:
        """Apply meshbook's manifests by name (`meshbook manifests NAME` prints the same)."""
        out: list[AppliedObject] = []
        for name in names:
            out += self.apply_objects(render(name, self.params), f"manifest {name}")
        return out

    def namespace(self, name: str, *, inject: bool) -> list[AppliedObject]:
        """`kubectl create namespace NAME` (+ `kubectl label namespace NAME istio-injection=enabled`)."""
        return self.apply_objects([namespace_manifest(name, inject)], f"namespace {name}")

    def auto_inject(self, namespace: str, on: bool) -> None:
        """`backyards sidecar-proxy auto-inject on|off NAMESPACE` (the `istio-injection` label)."""
        from meshbook.mesh.injection import auto_inject, injection_enabled

        if self.checking:
            live = self.applier.read("v1", "Namespace", namespace)
            actual = live is not None and injection_enabled((live.get("metadata") or {}).get("labels"))
            ok = actual == on
            self.record(
                Kind.NAMESPACE,
                namespace,
                outcome=RecordOutcome.PASS if ok else RecordOutcome.FAIL,
                expected={"injection": on},
                observed={"injection": actual},
                reason="" if ok else f"istio-injection label is {'set' if actual else 'not set'}",
            )
            return
        auto_inject(self.context.api, namespace, on)
        self.record(Kind.NAMESPACE, namespace, outcome=RecordOutcome.INFO, observed={"injection": on})

    def require_mtls(self) -> None:
        """`backyards mtls require mesh`: PeerAuthentication default in the root namespace."""
        self.apply("mesh-mtls")

    def allow_webhook(self) -> None:
        """`backyards mtls allow vault-system/vault-secrets-webhook` (when `bank_vaults.webhook_permissive`)."""
        if not self.params.bank_vaults.webhook_permissive:
            self.record(
                Kind.MESH_POLICY,
                f"{self.params.bank_vaults.namespace}/vault-secrets-webhook",
                outcome=RecordOutcome.SKIP,
                reason="bank_vaults.webhook_permissive is false: no PERMISSIVE exception for the webhook",
            )
            return
        self.apply("webhook-permissive")

    def allow_vault(self) -> None:
        """`backyards mtls allow vault` (when `vault.permissive`)."""
        if not self.params.vault.permissive:
            self.record(
                Kind.MESH_POLICY,
                f"{self.params.vault.namespace}/default",
                outcome=RecordOutcome.SKIP,
                reason="vault.permissive is false: no PERMISSIVE policy in the Vault namespace",
            )
            return
        self.apply("vault-permissive")

    def install_istio(self) -> None:
        self._install("istio")

    def install_bank_vaults(self) -> None:
        self._install("bank-vaults")

    def _install(self, component: str) -> None:
        from meshbook.install import installer_for

        if self.checking:
            self.record(
                Kind.INSTALL,
                component,
                outcome=RecordOutcome.SKIP,
                reason="mode check: installs are verified by the expectations",
            )
            return
        installer = installer_for(self.params, self.context.api)
        result = (
            installer.install_istio(self.params) if component == "istio" else installer.install_bank_vaults(self.params)
        )
        self.record(Kind.INSTALL, component, outcome=RecordOutcome.INFO, observed=_plain(result))

    def recreate_pods(self, namespace: str) -> None:
        """`kubectl delete pods --all -n NAMESPACE`, waiting for the replacements."""
        from meshbook.kube.pods import recreate_pods

        if self.checking:
            self.record(Kind.ACTION, namespace, outcome=RecordOutcome.SKIP, reason="mode check: pods are not recreated")
            return
        try:
            recreate_pods(self.context.api, namespace, timeout=self.params.timeouts.pods_ready)
        except WaitTimeoutError as exc:
            reason = f"pods recreated but not all Ready: {exc}"
            self.record(Kind.ACTION, namespace, outcome=RecordOutcome.INFO, reason=reason)
            return
        self.record(Kind.ACTION, namespace, outcome=RecordOutcome.INFO, observed={"recreated": "all pods"})

    # -- expectations ----------------------------------------------------------------------------------

    def expect_ready(
        self, namespace: str, expected: Mapping[str, str], *, counts: Mapping[str, int] | None = None
    ) -> pd.DataFrame:
        """Pods of each workload Ready with the READY column the guide shows (e.g. {"vault": "3/3"})."""
        outcome, frame = check_pods_ready(self, namespace, expected, counts or {})
        self.outcomes.append(outcome)
        return frame

    def expect_pods(self, namespace: str | None = None) -> pd.DataFrame:
        """This runbook's expected READY counts (DESIGN's table), for one namespace or all it names."""
        from meshbook.runbook.expectations import expected_pods

        frames = [
            self.expect_ready(e.namespace, e.ready, counts=e.counts)
            for e in expected_pods(self.context.notebook, self.params)
            if namespace is None or e.namespace == namespace
        ]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def expect_mesh_mtls(self) -> pd.DataFrame:
        """`PeerAuthentication <root>/default` has the mesh-wide mode the parameters ask for."""
        root = self.params.istio.namespace
        want = str(self.params.istio.mesh_mtls_mode)
        live = self.applier.read("security.istio.io/v1", "PeerAuthentication", "default", root)
        mode = ((live or {}).get("spec") or {}).get("mtls", {}).get("mode") if live else None
        passed = mode == want
        reason = (
            "" if passed else (f"PeerAuthentication {root}/default is missing" if live is None else f"mode is {mode}")
        )
        result = ExpectationResult("mesh mTLS", f"PeerAuthentication {root}/default", want, str(mode), passed, reason)
        self.outcomes.append(result)
        self.record(
            Kind.MESH_POLICY,
            f"{root}/default",
            outcome=RecordOutcome.PASS if passed else RecordOutcome.FAIL,
            expected={"mode": want},
            observed={"mode": mode},
            reason=reason,
        )
        return pd.DataFrame([result.row()], columns=list(ExpectationResult.COLUMNS))

    def expect_secret_delivered(self, containers: Sequence[str] | None = None) -> pd.DataFrame:
        """The app (and its init container) printed the secret Vault holds; only verdicts are kept."""
        if containers is None:
            containers = ["init-ubuntu", "app"] if self.params.app.init_container else ["app"]
        outcomes, frame = check_secret_delivery(self, list(containers))
        self.outcomes += outcomes
        return frame

    def mtls_table(self) -> pd.DataFrame:
        from meshbook.mesh.mtls import mtls_table

        frame = mtls_table(self.context.api, root_namespace=self.params.istio.namespace)
        for row in frame.to_dict("records"):
            subject = f"{row['namespace']}/{row['workload']}" + (f":{row['port']}" if row.get("port") else "")
            self.record(
                Kind.MESH_POLICY,
                subject,
                outcome=RecordOutcome.INFO,
                observed=_plain(row),
                reason=str(row["deciding_object"]),
            )
        return frame

    def finish(self) -> pd.DataFrame:
        """The notebook's expectations as a table; raises ExpectationFailed (exit 1) if one did not hold."""
        frame = pd.DataFrame([o.row() for o in self.outcomes], columns=list(ExpectationResult.COLUMNS))
        failed: list[ExpectationResult | dict[str, Any]] = [o for o in self.outcomes if not o.passed]
        # Steps that found drift (mode check) or failed fail the notebook too; expectation records are
        # already counted through their outcomes.
        failed += [r for r in self.context.records if r["outcome"] == RecordOutcome.FAIL and r["kind"] in STEP_KINDS]
        if failed:
            # Connection verdicts name the deciding objects: they lead, consequences (READY, timeouts) follow.
            failed.sort(
                key=lambda o: 0 if isinstance(o, ExpectationResult) and o.expectation == "secret delivered" else 1
            )
            reasons = "; ".join(o.reason if isinstance(o, ExpectationResult) else str(o["reason"]) for o in failed)
            raise ExpectationFailed(f"{self.context.notebook}: {len(failed)} expectation(s) failed: {reasons}")
        return frame


def _plain(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return _plain(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
