"""What notebook cells show for a step: escaped tables, applied YAML with secret values redacted, no reprs.

Fast: no cluster. The Session tests replace its Applier (and the cluster calls of injection and pod
recreation) with stand-ins, so they check what each step returns for the notebook to display.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest

from meshbook.kube.apply import AppliedObject
from meshbook.manifests import DEMO_STARTUP_SECRETS, vault_cr
from meshbook.params import load_params
from meshbook.runbook.display import (
    REDACTED,
    ObjectChange,
    StepResult,
    html_table,
    manifest_yaml,
    markdown_table,
    redact_manifest,
)
from meshbook.runbook.session import Session
from tests.widgets import offline_session, pod

HOSTILE = '<script>alert("x")</script> | *bold* `code` a_b'
PYTHON_REPR = re.compile(r"\b(StepResult|ObjectChange|AppliedObject|InstallResult|PodRow|Outcome)\(")


def forms(result: StepResult) -> dict[str, str]:
    """The three forms Jupyter stores for an output: HTML, Markdown and plain text."""
    return {"html": result._repr_html_(), "markdown": result._repr_markdown_(), "text": repr(result)}


def secret(**data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "creds", "namespace": "app"},
        "data": dict(data),
        "stringData": dict(data),
    }


# -- helpers ----------------------------------------------------------------------------------------------


def test_html_table_escapes_every_text() -> None:
    table = html_table(("kind", HOSTILE), [(HOSTILE, None, 3)], css_class='x" onload="y')
    assert "<script>" not in table and "onload=" not in table.replace("&quot; onload=&quot;", "")
    assert table.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;") == 2
    assert table.startswith('<table class="x&quot; onload=&quot;y"><thead><tr><th>kind</th>')
    assert "<td></td><td>3</td>" in table  # None is an empty cell, not "None"


def test_markdown_table_escapes_pipes_markup_and_emphasis() -> None:
    table = markdown_table(("a", "b"), [(HOSTILE, "two\nlines")])
    header, rule, row = table.splitlines()
    assert (header, rule) == ("| a | b |", "|---|---|")
    assert "<script>" not in row
    assert "&lt;script&gt;" in row
    assert row.count(" | ") == 1  # the cell's own pipe is escaped, so the row still has two cells
    assert r"\| \*bold\* \`code\` a\_b" in row
    assert row.endswith("two<br>lines |")


def test_redact_manifest_replaces_secret_values_and_keeps_keys() -> None:
    original = secret(password="hunter2-value", token="dG9rZW4tdmFsdWU=")
    redacted = redact_manifest(original)
    assert redacted["data"] == {"password": REDACTED, "token": REDACTED}
    assert redacted["stringData"] == {"password": REDACTED, "token": REDACTED}
    assert original["data"]["password"] == "hunter2-value"  # a copy: the object applied is untouched
    text = manifest_yaml(original)
    assert "hunter2-value" not in text and "dG9rZW4tdmFsdWU=" not in text
    assert f"password: {REDACTED}" in text


def test_redact_manifest_hides_the_vault_crs_startup_secrets() -> None:
    (cr,) = [o for o in vault_cr(load_params()) if o["kind"] == "Vault"]
    text = manifest_yaml(cr)
    for value in DEMO_STARTUP_SECRETS.values():
        assert value not in text
    for key in DEMO_STARTUP_SECRETS:
        assert f"{key}: {REDACTED}" in text
    assert "istioEnabled: true" in text  # everything else is shown


def test_redact_manifest_hides_the_last_applied_annotation() -> None:
    obj = secret(password="hunter2-value")
    obj["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": '{"data": "hunter2"}'}
    assert "hunter2" not in manifest_yaml(obj)


def test_object_change_actions() -> None:
    def applied(before: str | None, after: str) -> ObjectChange:
        return ObjectChange.applied(AppliedObject("v1", "Namespace", None, "app", before, after))

    assert applied(None, "5").row() == ("Namespace", "app", "created", "(new) -> 5", "")
    assert applied("5", "9").row() == ("Namespace", "app", "configured", "5 -> 9", "")
    assert applied("9", "9").row() == ("Namespace", "app", "unchanged", "9 -> 9", "")
    drift = ObjectChange.compared(secret(password="x"), ["Secret app/creds: data.password differs"])
    assert drift.row() == ("Secret", "app/creds", "dry-run: drift", "", "Secret app/creds: data.password differs")
    assert ObjectChange.compared(secret(), []).action == "dry-run: in sync"


def test_step_result_shows_tables_commands_and_yaml_never_a_repr() -> None:
    change = ObjectChange.applied(
        AppliedObject("v1", "Secret", "app", "creds", None, "7"), secret(password="hunter2-value")
    )
    result = StepResult(
        "Vault",
        "manifest x: 1 object(s) applied",
        objects=(change,),
        pods=(("vault-0", "3/3", "Running", 0),),
        today=("kubectl apply --server-side -f -",),
    )
    shown = forms(result)
    for name, text in shown.items():
        assert not PYTHON_REPR.search(text), name
        assert "hunter2-value" not in text, name
    html = shown["html"]
    assert '<table class="meshbook-objects">' in html
    assert "<td>Secret</td><td>app/creds</td><td>created</td><td>(new) -&gt; 7</td>" in html
    assert '<table class="meshbook-pods"><thead><tr><th>NAME</th><th>READY</th><th>STATUS</th>' in html
    assert "<td>vault-0</td><td>3/3</td><td>Running</td>" in html
    assert '<details class="meshbook-yaml"><summary>YAML: Secret app/creds</summary>' in html
    assert "apiVersion: v1\nkind: Secret" in html
    assert "today&#x27;s command:</p><pre>kubectl apply --server-side -f -</pre>" in html
    assert "| Secret | app/creds | created | (new) -&gt; 7 |  |" in shown["markdown"]
    assert "```yaml\napiVersion: v1\nkind: Secret" in shown["markdown"]
    assert shown["text"].splitlines()[0] == "Vault: manifest x: 1 object(s) applied"
    assert str(result) == shown["text"]


def test_step_result_escapes_names_from_the_cluster() -> None:
    change = ObjectChange("ConfigMap", "app", HOSTILE, "created", None, "1", yaml=f"name: {HOSTILE}\n")
    result = StepResult(HOSTILE, HOSTILE, objects=(change,), today=(HOSTILE,))
    html = result._repr_html_()
    assert "<script>" not in html
    outside_fences = re.sub(r"(`{3,})[a-z]*\n.*?\n\1", "", result._repr_markdown_(), flags=re.S)
    assert "<script>" not in outside_fences  # inside a fence it is shown as text, not run


def test_markdown_yaml_fence_outlasts_backticks_in_the_yaml() -> None:
    change = ObjectChange("ConfigMap", "app", "c", "created", None, "1", yaml="data:\n  x: |\n    ````\n")
    markdown = StepResult("s", "t", objects=(change,))._repr_markdown_()
    assert "`````yaml\ndata:" in markdown
    assert markdown.rstrip().endswith("`````\n\n</details>")


# -- what the Session's steps return ----------------------------------------------------------------------


class FakeApplier:
    """Stands in for the cluster: every object is new (or, with `live`, already at resourceVersion 3)."""

    def __init__(self, drift: list[str] | None = None, live: Mapping[str, Any] | None = None) -> None:
        self._drift = drift or []
        self._live = live
        self.applied: list[Mapping[str, Any]] = []

    def apply(self, obj: Mapping[str, Any]) -> AppliedObject:
        self.applied.append(obj)
        meta = obj["metadata"]
        return AppliedObject(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"], None, "11")

    def drift(self, obj: Mapping[str, Any]) -> list[str]:
        return list(self._drift)

    def read(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return dict(self._live) if self._live is not None else None


def session_with(applier: FakeApplier, notebook: str = "10-scenario-1", *overrides: str) -> Session:
    rb = offline_session(notebook, *overrides)
    rb.applier = applier  # type: ignore[assignment]
    return rb


def test_apply_shows_each_object_with_its_yaml_and_redacts_secrets() -> None:
    rb = session_with(FakeApplier())
    result = rb.step("Vault").apply_objects([secret(password="hunter2-value")], "manifest creds")
    assert [o.row() for o in result.objects] == [("Secret", "app/creds", "created", "(new) -> 11", "")]
    assert result.today == ("kubectl apply --server-side --field-manager=meshbook --force-conflicts -f -   "
                            "# input: the YAML below",)  # fmt: skip
    for text in forms(result).values():
        assert "hunter2-value" not in text
        assert not PYTHON_REPR.search(text)


def test_apply_masks_values_the_run_knows_are_secret_in_any_object() -> None:
    rb = session_with(FakeApplier())
    rb.context.redactor.add("known-secret-value-42", label="vault value")
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "app"}}
    result = rb.apply_objects([{**config, "data": {"k": "known-secret-value-42"}}], "manifest c")
    assert "known-secret-value-42" not in result.objects[0].yaml
    assert "k: " in result.objects[0].yaml


def test_apply_by_name_puts_every_manifest_in_one_result() -> None:
    rb = session_with(FakeApplier())
    result = rb.step("Vault").apply("rbac", "vault-cr")
    assert [o.kind for o in result.objects] == [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ClusterRoleBinding",
        "PersistentVolumeClaim",
        "Vault",
    ]
    assert result.summary == "manifest rbac, vault-cr: 6 object(s) applied"
    html = result._repr_html_()
    for value in DEMO_STARTUP_SECRETS.values():
        assert value not in html
    assert html.count("<details") == 6


def test_check_mode_shows_the_dry_run_drift() -> None:
    drift = ["PeerAuthentication vault/default: spec.mtls.mode differs"]
    rb = session_with(FakeApplier(drift=drift), "10-scenario-1", "mode=check")
    result = rb.step("vault PERMISSIVE").allow_vault()
    (change,) = result.objects
    assert change.row() == (
        "PeerAuthentication",
        "vault/default",
        "dry-run: drift",
        "",
        "PeerAuthentication vault/default: spec.mtls.mode differs",
    )
    assert result.today[0].startswith("kubectl diff --server-side")
    assert "mode: PERMISSIVE" in change.yaml


def test_skipped_policy_says_why() -> None:
    rb = session_with(FakeApplier(), "10-scenario-1", "vault.permissive=false")
    result = rb.step("vault PERMISSIVE").allow_vault()
    assert result.objects == ()
    assert "skipped: vault.permissive is false" in result._repr_html_()


def test_installs_show_todays_helm_and_istioctl_commands() -> None:
    rb = session_with(FakeApplier(), "01-prereq-bank-vaults", "mode=check")
    text = repr(rb.step("install Bank-Vaults").install_bank_vaults())
    assert (
        "helm upgrade --install vault-operator oci://ghcr.io/bank-vaults/helm-charts/vault-operator "
        "--version 1.24.0 --namespace vault-system"
    ) in text
    assert (
        "helm upgrade --install vault-secrets-webhook oci://ghcr.io/bank-vaults/helm-charts/vault-secrets-webhook"
        in text
    )
    assert "env.VAULT_ADDR=https://vault.vault:8200" in text
    istioctl = session_with(FakeApplier(), "00-prereq-istio", "mode=check").install_istio()
    assert istioctl.today[0].startswith("istioctl install -y --set profile=default")
    charts = session_with(FakeApplier(), "00-prereq-istio", "mode=check", "istio.install_method=helm").install_istio()
    assert any(c.startswith("helm upgrade --install istiod istio/istiod") for c in charts.today)


def test_auto_inject_shows_the_label_change(monkeypatch: pytest.MonkeyPatch) -> None:
    import meshbook.mesh.injection as injection

    def labelled(api: object, namespace: str, on: bool) -> AppliedObject:
        return AppliedObject("v1", "Namespace", None, namespace, "4", "8")

    monkeypatch.setattr(injection, "auto_inject", labelled)
    result = session_with(FakeApplier(), "20-scenario-2").step("injection").auto_inject("app", False)
    assert [o.row() for o in result.objects] == [("Namespace", "app", "configured", "4 -> 8", "")]
    assert result.today == ("kubectl label namespace app istio-injection-",)
    assert "istio-injection: null" in result.objects[0].yaml
    assert result.summary == "sidecar injection off in namespace app: configured"


def test_auto_inject_in_check_mode_compares_the_label() -> None:
    live = {"metadata": {"name": "vault", "labels": {}}}
    rb = session_with(FakeApplier(live=live), "20-scenario-2", "mode=check")
    result = rb.step("injection").auto_inject("vault", True)
    assert result.objects[0].action == "dry-run: drift"
    assert result.today == ("kubectl label namespace vault istio-injection=enabled --overwrite",)


def test_recreate_pods_shows_the_replacements_as_kubectl_lists_them(monkeypatch: pytest.MonkeyPatch) -> None:
    import meshbook.kube.pods as pods

    replacements = [
        pod("vault", "vault-0", ["vault", "bank-vaults", "prometheus-exporter", "istio-proxy"]),
        pod("vault", "vault-configurer-6d9b9-l4flc", ["bank-vaults", "istio-proxy"], ready=False, restarts=2),
    ]
    monkeypatch.setattr(pods, "recreate_pods", lambda api, namespace, timeout, give_up_after_crashes: replacements)
    monkeypatch.setattr(pods, "deployments_of_replicasets", lambda api, namespace: {})
    result = session_with(FakeApplier(), "20-scenario-2").step("recreate Vault").recreate_pods("vault")
    assert result.pods == (
        ("vault-0", "4/4", "Running", 0),
        ("vault-configurer-6d9b9-l4flc", "0/2", "ContainerCreating", 4),  # restarts of both containers
    )
    assert result.today == ("kubectl delete pods --all -n vault", "kubectl get pods -n vault")
    assert "<th>READY</th><th>STATUS</th>" in result._repr_html_()


@pytest.mark.parametrize(
    ("before", "on", "action", "yaml"),
    [
        (
            None,
            True,
            "created",
            "kind: Namespace\nmetadata:\n  name: app\n  labels:\n    name: app\n    istio-injection: enabled\n",
        ),
        ("4", True, "unchanged", ""),  # label already there: nothing sent
        ("missing", False, "nothing to do (does not exist)", ""),
    ],
)
def test_auto_inject_reports_each_outcome(
    monkeypatch: pytest.MonkeyPatch, before: str | None, on: bool, action: str, yaml: str
) -> None:
    import meshbook.mesh.injection as injection

    def outcome(api: object, namespace: str, on: bool) -> AppliedObject | None:
        if before == "missing":
            return None
        return AppliedObject("v1", "Namespace", None, namespace, before, before or "5")

    monkeypatch.setattr(injection, "auto_inject", outcome)
    (change,) = session_with(FakeApplier(), "30-scenario-3").step("injection").auto_inject("app", on).objects
    assert change.action == action
    assert (yaml in change.yaml) if yaml else change.yaml == ""
