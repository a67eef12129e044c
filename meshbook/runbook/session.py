"""What a runbook notebook calls: the guide's steps and the scenario's expectations.

Each step is one short call in a notebook cell. In `mode: apply` steps change the cluster idempotently
(server-side apply); in `mode: check` they only compare the cluster with what the step would apply (a
dry run: no resourceVersion moves) and record drift. Every step and expectation becomes an evidence
record; `finish()` shows the expectations and fails the notebook (exit 1) when one did not hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pandas as pd

from meshbook import progress
from meshbook.errors import ExpectationFailed, WaitTimeoutError
from meshbook.evidence import Kind, RecordOutcome
from meshbook.kube.apply import FIELD_MANAGER, Applier
from meshbook.kube.waits import WaitAbandoned
from meshbook.manifests import namespace as namespace_manifest
from meshbook.manifests import render
from meshbook.params import Mode, RunbookParams, Target
from meshbook.runbook.checks import ExpectationResult, check_pods_ready, check_secret_delivery
from meshbook.runbook.context import RunContext, params_from_scope
from meshbook.runbook.display import MISSING_NOTHING_TO_DO, ObjectChange, StepResult, pod_line

STEP_KINDS = (Kind.ACTION, Kind.NAMESPACE, Kind.MESH_POLICY, Kind.INSTALL)
APPLY_COMMAND = f"kubectl apply --server-side --field-manager={FIELD_MANAGER} --force-conflicts -f -"
DIFF_COMMAND = f"kubectl diff --server-side --field-manager={FIELD_MANAGER} --force-conflicts -f -"
"""Today's command for what a step applies (or, in mode check, compares); its input is the YAML shown."""


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
        progress.report("step", notebook=self.context.notebook, step=name)
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

    def apply_objects(self, objects: Sequence[Mapping[str, Any]], what: str) -> StepResult:
        """Server-side apply each object (mode check: a dry run that records drift); the result shows each."""
        changes: list[ObjectChange] = []
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
                changes.append(self._shown(ObjectChange.compared(obj, drift)))
                continue
            result = self.applier.apply(obj)
            changes.append(self._shown(ObjectChange.applied(result, obj)))
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
        verb = "compared with the cluster (dry run)" if self.checking else "applied"
        counted = f"{len(changes)} object(s) {verb}"
        return StepResult(
            self.step_name,
            counted if what == self.step_name else f"{what}: {counted}",
            objects=tuple(changes),
            today=(f"{DIFF_COMMAND if self.checking else APPLY_COMMAND}   # input: the YAML below",),
        )

    def _shown(self, change: ObjectChange) -> ObjectChange:
        """The change with any value the run knows to be secret masked in its YAML (belt and braces)."""
        return replace(change, yaml=self.context.redactor.redact(change.yaml))

    def apply(self, *names: str) -> StepResult:
        """Apply meshbook's manifests by name (`meshbook manifests NAME` prints the same)."""
        results = [self.apply_objects(render(name, self.params), f"manifest {name}") for name in names]
        verb = "compared with the cluster (dry run)" if self.checking else "applied"
        objects = tuple(change for result in results for change in result.objects)
        return StepResult(
            self.step_name,
            f"manifest {', '.join(names)}: {len(objects)} object(s) {verb}",
            objects=objects,
            today=results[0].today if results else (),
        )

    def namespace(self, name: str, *, inject: bool) -> StepResult:
        """`kubectl create namespace NAME` (+ `kubectl label namespace NAME istio-injection=enabled`)."""
        return self.apply_objects([namespace_manifest(name, inject)], f"namespace {name}")

    def auto_inject(self, namespace: str, on: bool) -> StepResult:
        """`backyards sidecar-proxy auto-inject on|off NAMESPACE` (the `istio-injection` label)."""
        from meshbook.mesh.injection import INJECTION_ENABLED, INJECTION_LABEL, auto_inject, injection_enabled

        label = f"{INJECTION_LABEL}={INJECTION_ENABLED} --overwrite" if on else f"{INJECTION_LABEL}-"
        today = (f"kubectl label namespace {namespace} {label}",)
        patch = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": {INJECTION_LABEL: INJECTION_ENABLED if on else None}},
        }
        wanted = f"sidecar injection {'on' if on else 'off'} in namespace {namespace}"
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
            drift = [] if ok else [f"Namespace {namespace}: metadata.labels.{INJECTION_LABEL} differs"]
            change = ObjectChange.compared(patch, drift)
            return StepResult(self.step_name, f"{wanted}: {change.action}", objects=(change,), today=today)
        result = auto_inject(self.context.api, namespace, on)
        self.record(Kind.NAMESPACE, namespace, outcome=RecordOutcome.INFO, observed={"injection": on})
        if result is None:
            change = ObjectChange("Namespace", None, namespace, MISSING_NOTHING_TO_DO)
        elif result.resource_version_before is None:  # turning on created the missing namespace
            change = ObjectChange.applied(result, namespace_manifest(namespace, inject=True))
        else:
            change = ObjectChange.applied(result, patch if result.changed else None)
        return StepResult(self.step_name, f"{wanted}: {change.action}", objects=(change,), today=today)

    def require_mtls(self) -> StepResult:
        """`backyards mtls require mesh`: PeerAuthentication default in the root namespace."""
        return self.apply("mesh-mtls")

    def allow_webhook(self) -> StepResult:
        """`backyards mtls allow vault-system/vault-secrets-webhook` (when `bank_vaults.webhook_permissive`)."""
        if not self.params.bank_vaults.webhook_permissive:
            reason = "bank_vaults.webhook_permissive is false: no PERMISSIVE exception for the webhook"
            self.record(
                Kind.MESH_POLICY,
                f"{self.params.bank_vaults.namespace}/vault-secrets-webhook",
                outcome=RecordOutcome.SKIP,
                reason=reason,
            )
            return StepResult(self.step_name, f"skipped: {reason}")
        return self.apply("webhook-permissive")

    def allow_vault(self) -> StepResult:
        """`backyards mtls allow vault` (when `vault.permissive`)."""
        if not self.params.vault.permissive:
            reason = "vault.permissive is false: no PERMISSIVE policy in the Vault namespace"
            self.record(
                Kind.MESH_POLICY, f"{self.params.vault.namespace}/default", outcome=RecordOutcome.SKIP, reason=reason
            )
            return StepResult(self.step_name, f"skipped: {reason}")
        return self.apply("vault-permissive")

    def install_istio(self) -> StepResult:
        """`istioctl install` or the Istio Helm charts on live; on the sandbox, the objects they create."""
        return self._install("istio")

    def install_bank_vaults(self) -> StepResult:
        """`helm upgrade --install` of the operator and webhook OCI charts (on the sandbox, their objects)."""
        return self._install("bank-vaults")

    def _install(self, component: str) -> StepResult:
        from meshbook.install import installer_for

        live_commands = _live_install_commands(self.params, component)
        if self.checking:
            reason = "mode check: installs are verified by the expectations"
            self.record(Kind.INSTALL, component, outcome=RecordOutcome.SKIP, reason=reason)
            return StepResult(self.step_name, f"{component}: skipped ({reason})", today=live_commands)
        installer = installer_for(self.params, self.context.api)
        result = (
            installer.install_istio(self.params) if component == "istio" else installer.install_bank_vaults(self.params)
        )
        self.record(Kind.INSTALL, component, outcome=RecordOutcome.INFO, observed=_plain(result))
        facts = (
            ("component", result.component),
            ("method", result.method),
            ("namespace", result.namespace),
            *((f"{name} version", version) for name, version in result.versions.items()),
        )
        on_sandbox = result.method == "sandbox"
        summary = (
            f"{component}: {len(result.applied)} object(s) the charts create applied to the sandbox"
            if on_sandbox
            else f"{component}: installed with {result.method}"
        )
        return StepResult(
            self.step_name,
            summary,
            objects=tuple(ObjectChange.applied(item) for item in result.applied),
            facts=facts,
            today=live_commands if on_sandbox else (),
            commands_run=tuple(result.command_lines),
        )

    def recreate_pods(self, namespace: str) -> StepResult:
        """`kubectl delete pods --all -n NAMESPACE`, waiting for the replacements."""
        from meshbook.kube.pods import deployments_of_replicasets, pod_rows, recreate_pods

        today = (f"kubectl delete pods --all -n {namespace}", f"kubectl get pods -n {namespace}")
        if self.checking:
            self.record(Kind.ACTION, namespace, outcome=RecordOutcome.SKIP, reason="mode check: pods are not recreated")
            return StepResult(
                self.step_name, f"skipped: mode check, pods in {namespace} are not recreated", today=today
            )
        try:
            pods = recreate_pods(
                self.context.api,
                namespace,
                timeout=self.params.timeouts.pods_ready,
                give_up_after_crashes=self.params.timeouts.give_up_after_crashes,
            )
        except (WaitTimeoutError, WaitAbandoned) as exc:
            reason = f"pods recreated but not all Ready: {exc}"
            self.record(Kind.ACTION, namespace, outcome=RecordOutcome.INFO, reason=reason)
            return StepResult(self.step_name, f"namespace {namespace}: {reason}", today=today)
        self.record(Kind.ACTION, namespace, outcome=RecordOutcome.INFO, observed={"recreated": "all pods"})
        rows = pod_rows(pods, deployments_of_replicasets(self.context.api, namespace))
        return StepResult(
            self.step_name,
            f"namespace {namespace}: every pod deleted; {len(rows)} replacement(s) Ready",
            pods=tuple(pod_line(row) for row in rows),
            pods_title=f"the replacements, as `kubectl get pods -n {namespace}` lists them:",
            today=today,
        )

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


def _live_install_commands(params: RunbookParams, component: str) -> tuple[str, ...]:
    """The commands a live install runs for these parameters (shown beside a sandbox install)."""
    import shlex

    from meshbook.install import HelmInstaller, IstioctlInstaller, IstioHelmInstaller
    from meshbook.params import IstioInstallMethod

    def found(tool: str) -> str:
        return tool

    live = params.model_copy(update={"target": Target.LIVE})
    if component == "bank-vaults":
        commands = HelmInstaller(which=found).commands(live)
    elif params.istio.install_method is IstioInstallMethod.HELM:
        commands = IstioHelmInstaller(which=found).commands(live)
    else:
        commands = IstioctlInstaller(which=found).commands(live)
    return tuple(shlex.join(cmd) for cmd in commands)


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
