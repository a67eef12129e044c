"""What `notebooks/40-audit.ipynb` calls: discover, judge, record each finding as evidence, show tables.

The notebook opens its Session with `meshbook.runbook.start("40-audit", globals())` like the others;
nothing here changes the cluster. `finish` ends the notebook with exit 1 when an error-severity finding
exists, so `meshbook audit` exits as `istioctl analyze` does.
"""

from __future__ import annotations

import json

import pandas as pd

from meshbook.audit.codes import Severity
from meshbook.audit.discover import Discovery, discover, vault_service_accounts
from meshbook.audit.findings import Audit, Finding, audit
from meshbook.audit.reading import bank_vaults_webhooks, mesh_of
from meshbook.errors import ExpectationFailed
from meshbook.evidence import Kind, RecordOutcome
from meshbook.mesh.injection import injection_enabled
from meshbook.podstatus import sidecar_mode
from meshbook.runbook.session import Session


def read(rb: Session) -> Discovery:
    """Discovery through the notebook's client: gets and lists only (and a SubjectAccessReview)."""
    return discover(rb.context.api)


def posture(found: Discovery) -> pd.DataFrame:
    """What the cluster runs, as the audit read it: Istio, the Bank-Vaults webhook, Vault."""
    mesh = mesh_of(found)
    rows = [("Istio version (istiod image)", ".".join(map(str, mesh.istio_version)))]
    modes = sorted({str(sidecar_mode(p)) for p in found.pods if sidecar_mode(p) is not None})
    rows.append(("sidecar modes in use", ", ".join(modes) or "none"))
    rows.append(("PeerAuthentications", ", ".join(_policy(pa) for pa in found.peer_authentications) or "none"))
    injected = [n["metadata"]["name"] for n in found.namespaces if injection_enabled(n["metadata"].get("labels"))]
    rows.append(("namespaces with istio-injection=enabled", ", ".join(sorted(injected)) or "none"))
    for hook in bank_vaults_webhooks(found):
        injected_here = hook.namespace in injected
        rows += [
            (f"webhook {hook.name}", f"failurePolicy {hook.failure_policy}; namespace {hook.namespace}"),
            ("  its namespace injected", str(injected_here)),
            ("  its namespace exempted (ignoreReleaseNamespace)", str(hook.own_namespace_exempted)),
            ("  namespaceSelector", json.dumps(hook.namespace_selector, sort_keys=True)),
            ("  objectSelector", json.dumps(hook.object_selector, sort_keys=True)),
            ("  VAULT_ADDR", hook.env.get("VAULT_ADDR", "(webhook default)")),
            ("  VAULT_ADDR_ALLOWLIST", hook.env.get("VAULT_ADDR_ALLOWLIST", "(none)")),
        ]
    for vault in found.vaults:
        spec = vault.get("spec") or {}
        service = found.service(str(vault["metadata"].get("namespace")), str(vault["metadata"]["name"]))
        ports = [str(p.get("name")) for p in ((service or {}).get("spec") or {}).get("ports") or []]
        name = f"{vault['metadata'].get('namespace')}/{vault['metadata']['name']}"
        listener = ((spec.get("config") or {}).get("listener") or {}).get("tcp") or {}
        tls = "off" if str(listener.get("tls_disable", "")).lower() in ("true", "1") else "on"
        pods = found.pods_of(
            str(vault["metadata"].get("namespace")),
            {"app.kubernetes.io/name": "vault", "vault_cr": str(vault["metadata"]["name"])},
        )
        sidecars = ", ".join(f"{p['metadata']['name']}: {sidecar_mode(p) or 'no sidecar'}" for p in pods) or "no pods"
        rows += [
            (
                f"Vault {name}",
                f"istioEnabled {bool(spec.get('istioEnabled'))}; TLS {tls}; ports {', '.join(ports) or '?'}",
            ),
            ("  its pods", sidecars),
        ]
    rows.append(("Vault service accounts", ", ".join(vault_service_accounts(found)) or "none"))
    rows += [(f"not checked: {gap.checks}", f"{gap.what}: {gap.reason}") for gap in found.gaps]
    return pd.DataFrame(rows, columns=["what", "found"]).set_index("what")


def _policy(pa: dict[str, object]) -> str:
    meta = pa.get("metadata") or {}
    spec = pa.get("spec") or {}
    mode = ((spec.get("mtls") or {}) if isinstance(spec, dict) else {}).get("mode", "UNSET")
    where = f"{meta.get('namespace')}/{meta.get('name')}" if isinstance(meta, dict) else "?"
    return f"{where} {mode}"


def judge(rb: Session, found: Discovery) -> Audit:
    """Every rule; each finding becomes an evidence record (fail for an error, info otherwise)."""
    result = audit(found)
    for finding in result.findings:
        rb.record(
            Kind.FINDING,
            _record_subject(finding),
            outcome=RecordOutcome.FAIL if finding.severity is Severity.ERROR else RecordOutcome.INFO,
            observed={
                "code": finding.code,
                "severity": finding.severity.value,
                "title": finding.title,
                "object": finding.subject,
                "message": finding.message,
                "objects": list(finding.objects),
                "remedy": finding.remedy,
            },
            reason=finding.line(),
        )
    return result


def _record_subject(finding: Finding) -> str:
    """An evidence subject (no spaces): the object's namespace/name, `cluster` for the cluster itself."""
    name = finding.subject.split(" ", 1)[-1] if " " in finding.subject else finding.subject.lower()
    return name.replace(" ", "-") or "cluster"


def findings_table(result: Audit) -> pd.DataFrame:
    columns = ["severity", "code", "object", "message", "remedy"]
    rows = [(f.severity.value, f.code, f.subject, f.message, f.remedy) for f in result.findings]
    return pd.DataFrame(rows, columns=columns)


def containers_table(result: Audit) -> pd.DataFrame:
    """Each container that asks for a secret: the model's prediction and what its pod shows."""
    columns = ["pod", "container", "init", "mutated", "vault-addr", "predicted", "reason", "last run"]
    rows = [
        (
            v.pod,
            v.container,
            v.init,
            v.mutated,
            v.vault_addr,
            {True: "delivered", False: "refused", None: "—"}[v.delivered],
            v.reason,
            v.last_error or "—",
        )
        for v in result.containers
    ]
    return pd.DataFrame(rows, columns=columns)


def finish(rb: Session, result: Audit) -> None:
    """Print the findings as `istioctl analyze` does; ExpectationFailed (exit 1) on any error finding."""
    for finding in result.findings:
        print(finding.line())
    if not result.findings:
        print("No findings: every container that asks for a secret will get it.")
    if result.errors:
        codes = ", ".join(sorted({f.code for f in result.errors}))
        _message_only_traceback()
        raise ExpectationFailed(
            f"{rb.context.notebook}: {len(result.errors)} error finding(s) ({codes}): "
            + "; ".join(f.line() for f in result.errors)
        )


def _message_only_traceback() -> None:
    """Show the coming ExpectationFailed as its message alone, for this cell only: its findings are the
    table above, and IPython's verbose traceback (two frames of this module) costs ~0.3 s of stack_data."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:  # plain Python: tracebacks are already plain
        return
    traceback, mode = shell.InteractiveTB, shell.InteractiveTB.mode

    def restore(*_: object) -> None:
        traceback.set_mode(mode)
        shell.events.unregister("post_run_cell", restore)

    traceback.set_mode("Minimal")
    shell.events.register("post_run_cell", restore)
