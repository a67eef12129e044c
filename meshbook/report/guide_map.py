"""From the guide to today: every object and command of the 2020 guide, what replaces it, and the cell
that does it.

The guide (Banzai Cloud's "Running the Bank-Vaults secret webhook alongside Istio") uses objects and
tools that no longer exist (MeshPolicy, Policy, the Backyards CLI, the banzaicloud Helm repository);
applied today they fail exactly as on a cluster, with no pointer onward. This table is the one home of
that mapping: `report.html` shows it as a page, `docs/guide-to-today.md` is generated from it
(`meshbook explain --markdown > docs/guide-to-today.md`; a test keeps them equal), and `meshbook explain
NAME` prints an entry. A test checks that every
cell named here exists in `notebooks/`. Facts: the design card's FACTS, section 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["GUIDE_MAP", "CellRef", "GuideEntry", "explain_text", "find_entries", "known_names", "markdown_page"]


@dataclass(frozen=True)
class CellRef:
    """A notebook cell: the notebook, the `## ` heading of its section, and the code that is the cell."""

    notebook: str
    heading: str
    code: str

    def text(self) -> str:
        return f"{self.notebook} › {self.heading} › {self.code}"


@dataclass(frozen=True)
class GuideEntry:
    """One object or command of the guide; `names` are what `meshbook explain` accepts for it."""

    guide: str
    today: str
    cells: tuple[CellRef, ...]
    names: tuple[str, ...]
    replaced: bool = True
    """False when the guide's command still works as written (it is listed so the mapping is complete)."""

    def cell_text(self) -> str:
        return "; ".join(c.text() for c in self.cells) or "—"


def _cell(notebook: str, heading: str, code: str) -> CellRef:
    return CellRef(notebook, heading, code)


_ISTIO = "00-prereq-istio"
_BV = "01-prereq-bank-vaults"
_S1, _S2, _S3 = "10-scenario-1", "20-scenario-2", "30-scenario-3"

GUIDE_MAP: tuple[GuideEntry, ...] = (
    GuideEntry(
        "curl getbackyards.sh | sh; backyards install (Banzai Cloud istio-operator)",
        "Backyards became Cisco Service Mesh Manager and the Banzai operator stopped at Istio 1.17: install upstream "
        "Istio with `istioctl install` or the Helm charts istio/base then istio/istiod (namespace istio-system)",
        (_cell(_ISTIO, "Install Istio", 'rb.step("install Istio").install_istio()'),),
        ("backyards install", "istio-operator", "getbackyards"),
    ),
    GuideEntry(
        "kubectl patch istio -n istio-system mesh ... /spec/meshPolicy/mtlsMode STRICT",
        "the Istio CR of the Banzai operator is gone: apply PeerAuthentication istio-system/default "
        "(security.istio.io/v1) with spec.mtls.mode STRICT",
        (_cell(_ISTIO, "Require mTLS in the whole mesh", 'rb.step("require mTLS").require_mtls()'),),
        ("kubectl patch istio", "istio cr", "meshpolicy/mtlsmode"),
    ),
    GuideEntry(
        "backyards mtls require mesh",
        "no upstream CLI: PeerAuthentication istio-system/default with spec.mtls.mode STRICT (meshbook's verb)",
        (_cell(_ISTIO, "Require mTLS in the whole mesh", 'rb.step("require mTLS").require_mtls()'),),
        ("backyards mtls require", "backyards mtls require mesh"),
    ),
    GuideEntry(
        "MeshPolicy default (authentication.istio.io/v1alpha1); kubectl get meshpolicy default -o yaml",
        "removed in Istio 1.6: PeerAuthentication default in the root namespace istio-system; read it with "
        "kubectl get peerauthentication -n istio-system default -o yaml",
        (
            _cell(_ISTIO, "Require mTLS in the whole mesh", 'rb.step("require mTLS").require_mtls()'),
            _cell(_ISTIO, "Check the mesh policy", 'rb.step("mTLS posture").mtls_table()'),
        ),
        ("meshpolicy", "kubectl get meshpolicy", "authentication.istio.io"),
    ),
    GuideEntry(
        "backyards mtls get mesh",
        "no upstream CLI: the effective mode per namespace, workload and port from the PeerAuthentications "
        "(meshbook's mTLS table; `istioctl x describe pod` for one pod)",
        (_cell(_ISTIO, "Check the mesh policy", 'rb.step("mTLS posture").mtls_table()'),),
        ("backyards mtls get", "backyards mtls get mesh"),
    ),
    GuideEntry(
        "kubectl create namespace vault-system; kubectl label namespace vault-system istio-injection=enabled",
        "the same commands (server-side apply of the Namespace with the label)",
        (_cell(_BV, "A namespace for Bank-Vaults, in the mesh", 'rb.step("namespace")'),),
        ("kubectl create namespace", "istio-injection", "kubectl label namespace"),
        replaced=False,
    ),
    GuideEntry(
        "Policy vault-secrets-webhook (authentication.istio.io/v1alpha1, targets: [vault-secrets-webhook], PERMISSIVE)",
        "Service targets are gone: PeerAuthentication vault-system/vault-secrets-webhook with selector "
        "app.kubernetes.io/name=vault-secrets-webhook and mtls.mode PERMISSIVE (or portLevelMtls 8443)",
        (_cell(_BV, "PERMISSIVE for the webhook", 'rb.step("webhook PERMISSIVE").allow_webhook()'),),
        ("policy", "policy vault-secrets-webhook"),
    ),
    GuideEntry(
        "backyards mtls allow vault-system/vault-secrets-webhook",
        "no upstream CLI: the workload PeerAuthentication above",
        (_cell(_BV, "PERMISSIVE for the webhook", 'rb.step("webhook PERMISSIVE").allow_webhook()'),),
        ("backyards mtls allow vault-system/vault-secrets-webhook",),
    ),
    GuideEntry(
        "helm repo add banzaicloud-stable kubernetes-charts.banzaicloud.com",
        "that repository is dead (DNS gone since 2024): the charts are OCI, no `helm repo add` needed: "
        "oci://ghcr.io/bank-vaults/helm-charts/vault-operator and .../vault-secrets-webhook",
        (_cell(_BV, "Install the operator and the webhook", 'rb.step("install Bank-Vaults").install_bank_vaults()'),),
        ("helm repo add", "banzaicloud-stable", "banzaicloud", "kubernetes-charts.banzaicloud.com"),
    ),
    GuideEntry(
        "helm upgrade --install vault-secrets-webhook banzaicloud-stable/vault-secrets-webhook "
        "--namespace vault-system",
        "helm upgrade --install vault-secrets-webhook oci://ghcr.io/bank-vaults/helm-charts/vault-secrets-webhook "
        "--version 1.23.1 --namespace vault-system",
        (_cell(_BV, "Install the operator and the webhook", 'rb.step("install Bank-Vaults").install_bank_vaults()'),),
        ("helm upgrade vault-secrets-webhook", "vault-secrets-webhook chart"),
    ),
    GuideEntry(
        "helm upgrade --install vault-operator banzaicloud-stable/vault-operator --namespace vault-system",
        "helm upgrade --install vault-operator oci://ghcr.io/bank-vaults/helm-charts/vault-operator "
        "--version 1.24.0 --namespace vault-system",
        (_cell(_BV, "Install the operator and the webhook", 'rb.step("install Bank-Vaults").install_bank_vaults()'),),
        ("helm upgrade vault-operator", "vault-operator chart"),
    ),
    GuideEntry(
        "kubectl create namespace vault; kubectl apply -f rbac.yaml -f cr-istio.yaml",
        "the same objects from meshbook's own templates (`meshbook manifests rbac`, `meshbook manifests vault-cr`); "
        "the Vault CR keeps vault.banzaicloud.com/v1alpha1 and istioEnabled: true",
        (
            _cell(_S1, "Vault outside the mesh", 'rb.step("namespace vault")'),
            _cell(_S1, "Vault outside the mesh", 'rb.step("Vault").apply("rbac", "vault-cr")'),
        ),
        ("rbac.yaml", "cr-istio.yaml", "vault cr", "kubectl apply -f rbac.yaml"),
        replaced=False,
    ),
    GuideEntry(
        "Policy default in namespace vault (authentication.istio.io/v1alpha1, PERMISSIVE)",
        "PeerAuthentication vault/default with mtls.mode PERMISSIVE",
        (_cell(_S1, "PERMISSIVE in the Vault namespace", 'rb.step("vault PERMISSIVE").allow_vault()'),),
        ("policy default", "policy vault"),
    ),
    GuideEntry(
        "backyards mtls allow vault",
        "no upstream CLI: the namespace PeerAuthentication vault/default above",
        (_cell(_S1, "PERMISSIVE in the Vault namespace", 'rb.step("vault PERMISSIVE").allow_vault()'),),
        ("backyards mtls allow vault",),
    ),
    GuideEntry(
        "backyards sidecar-proxy auto-inject on|off NAMESPACE",
        "no upstream CLI: the namespace label istio-injection=enabled (removed for off), then recreate the pods",
        (
            _cell(_S1, "The app inside the mesh", 'rb.step("namespace app")'),
            _cell(_S2, "Move the mesh boundary", 'rb.step("injection").auto_inject'),
            _cell(_S3, "Both namespaces in the mesh", 'rb.step("injection").auto_inject'),
        ),
        ("backyards sidecar-proxy", "backyards sidecar-proxy auto-inject", "auto-inject", "sidecar-proxy"),
    ),
    GuideEntry(
        "kubectl label namespace app istio-injection- / vault istio-injection=enabled",
        "the same labels",
        (
            _cell(_S2, "Move the mesh boundary", 'rb.step("injection").auto_inject'),
            _cell(_S3, "Both namespaces in the mesh", 'rb.step("injection").auto_inject'),
        ),
        ("kubectl label namespace app",),
        replaced=False,
    ),
    GuideEntry(
        "kubectl apply -f app.yaml",
        "the same Deployment from meshbook's template (`meshbook manifests app`)",
        (_cell(_S1, "The app inside the mesh", 'rb.step("app").apply("app")'),),
        ("app.yaml", "kubectl apply -f app.yaml"),
        replaced=False,
    ),
    GuideEntry(
        "kubectl get pods -n NAMESPACE (READY 3/3, 4/4, 1/1, 2/2)",
        "the same READY counts, read and compared as expectations (watch-based, kubectl's READY rules)",
        (
            _cell(_S1, "Vault outside the mesh", "rb.expect_pods(rb.params.vault.namespace)"),
            _cell(_S1, "Expectations", "rb.expect_pods(rb.params.app.namespace)"),
            _cell(_S3, "Expectations", "rb.expect_pods()"),
        ),
        ("kubectl get pods",),
        replaced=False,
    ),
    GuideEntry(
        "kubectl delete pods --all -n NAMESPACE",
        "the same, then wait for the replacements (they are injected at creation)",
        (
            _cell(_S2, "Recreate the Vault pods", 'rb.step("recreate Vault").recreate_pods'),
            _cell(_S3, "Recreate every pod", 'rb.step("recreate pods").recreate_pods'),
        ),
        ("kubectl delete pods",),
        replaced=False,
    ),
    GuideEntry(
        'kubectl logs -f -n app deployment/app ("Received new Vault token", the secret in clear)',
        'vault-env logs in slog format, lowercase (msg="received new Vault token"); meshbook reads the log and '
        "records a keyed fingerprint, never the value",
        (
            _cell(_S1, "Expectations", "rb.expect_secret_delivered()"),
            _cell(_S2, "Expectations", "rb.expect_secret_delivered()"),
            _cell(_S3, "Expectations", "rb.expect_secret_delivered()"),
        ),
        ("kubectl logs", "received new vault token", "renewed vault token"),
    ),
)
"""Every object and command of the guide, in the guide's order (URLs without their scheme: a report links nowhere)."""


def _key(name: str) -> str:
    return re.sub(r"\s+", " ", name.strip().lower())


def known_names() -> list[str]:
    """Every name `meshbook explain` accepts, sorted."""
    return sorted({_key(n) for entry in GUIDE_MAP for n in entry.names})


def find_entries(name: str) -> list[GuideEntry]:
    """The entries a name stands for (case and spacing ignored): those it names exactly, else those with
    a name that starts with it as whole words (`backyards mtls` -> require, get, allow); [] when none."""
    key = _key(name)
    if not key:
        return []
    exact = [entry for entry in GUIDE_MAP if key in {_key(n) for n in entry.names}]
    if exact:
        return exact
    return [entry for entry in GUIDE_MAP if any(_key(n).startswith(key + " ") for n in entry.names)]


def explain_text(entries: list[GuideEntry]) -> str:
    """What `meshbook explain NAME` prints: each entry's guide text, today's equivalent, its cells."""
    blocks = []
    for entry in entries:
        lines = [f"the guide: {entry.guide}", f"today:     {entry.today}"]
        lines += [f"notebook:  {cell.text()}" for cell in entry.cells]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def markdown_page() -> str:
    """docs/guide-to-today.md: the table, generated from GUIDE_MAP."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "# From the guide to today",
        "",
        "<!-- generated from meshbook/report/guide_map.py: `meshbook explain --markdown > docs/guide-to-today.md` -->",
        "",
        "Every object and command of the Bank-Vaults guide *Running the Bank-Vaults secret webhook alongside",
        "Istio* (2020), what does the same today, and the notebook cell that does it (notebook › section › code).",
        "`meshbook explain NAME` prints one entry (e.g. `meshbook explain meshpolicy`); every `report.html` ends",
        "with this table.",
        "",
        "| the guide (2020) | today | notebook cell |",
        "|---|---|---|",
    ]
    for entry in GUIDE_MAP:
        cells = "<br>".join(f"`{c.notebook}` › {c.heading} › `{c.code}`" for c in entry.cells)
        lines.append(f"| `{cell(entry.guide)}` | {cell(entry.today)} | {cell(cells)} |")
    lines += ["", "Names `meshbook explain` knows: " + ", ".join(f"`{n}`" for n in known_names()) + ".", ""]
    return "\n".join(lines)
