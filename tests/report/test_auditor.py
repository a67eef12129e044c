"""Reports an auditor can hand on (issue 16): the header, unmistakable delivery evidence, explained
restarts, one root cause per failure, the guide mapped to today, `meshbook explain`.

Synthetic runs come from test_synthetic; a run with identity gets the `identity` block `meshbook run`
writes into summary.json at its end. Negative cases first.
"""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meshbook.evidence import fingerprint
from meshbook.params import RunbookParams
from meshbook.report import build_reports, read_run, render_html, render_junit, render_markdown
from meshbook.report.guide_map import GUIDE_MAP, find_entries, known_names, markdown_page
from meshbook.report.header import NOT_RECORDED, header_rows
from meshbook.report.verdicts import LITERAL_REFERENCE, NOTHING_DELIVERED, delivery_verdict, restart_notes
from meshbook.runbook.identity import NOT_A_CHECKOUT, changed_parameters, meshbook_build, vault_server_versions
from tests.conftest import ROOT, CliResult
from tests.report.test_synthetic import FP_KEY, RUN_FAIL, RUN_PASS, SECRET, STRICT_REASON, write_run

IDENTITY: dict[str, Any] = {
    "meshbook": {"version": "0.1.0", "commit": "0123456789abcdef0123456789abcdef01234567"},
    "parameters_changed": {"vault.permissive": False, "timeouts.pods_ready": 60.0},
    "cluster": {
        "target": "sandbox",
        "server": "https://127.0.0.1:40001",
        "context": "meshbook-sandbox",
        "sandbox": "run-20250101T000000Z-aaaaaa",
        "kube_system_uid": "35c9cfdf-212a-45d1-bcfd-ce78c4baf559",
        "reachable": True,
    },
    "observed": {
        "kubernetes": "v1.33.0",
        "istiod": {"istiod/discovery": "docker.io/istio/pilot:1.30.0"},
        "bank-vaults": {
            "vault-operator/vault-operator": "ghcr.io/bank-vaults/vault-operator:v1.24.0",
            "vault-secrets-webhook/vault-secrets-webhook": "ghcr.io/bank-vaults/vault-secrets-webhook:v1.23.1",
        },
        "vault CR image": "hashicorp/vault:1.21.4",
    },
    "vault_server": {"version": "2.7.2", "cluster_id": "24801271-dc12-8945-7acb-62735f5d8faa"},
    "requested": {"istio": "1.30.0", "vault-operator chart": "1.24.0", "vault-secrets-webhook chart": "1.23.1"},
}


def _with_identity(run: Path) -> Path:
    summary = json.loads((run / "summary.json").read_text())
    summary["identity"] = IDENTITY
    (run / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return run


def _section(page: str, start: str, end: str | None) -> str:
    begin = page.index(start)
    return page[begin : page.index(end, begin) if end else len(page)]


# -- 1. the header --------------------------------------------------------------------------------------------


def test_an_old_run_without_identity_says_not_recorded(tmp_path: Path) -> None:
    run = read_run(write_run(tmp_path, RUN_PASS))
    rows = dict(header_rows(run))
    for label in ("meshbook", "cluster", "Kubernetes", "Istio (istiod image)", "Vault", "leak scan"):
        assert rows[label] == NOT_RECORDED, label
    page = render_html([run])
    header = _section(page, '<section class="identity" id="identity">', "</section>")
    assert header.count(NOT_RECORDED) == len([v for v in rows.values() if v == NOT_RECORDED]) >= 6
    assert page.index('id="identity"') < page.index('id="summary"')
    assert f"| Kubernetes | {NOT_RECORDED} |" in render_markdown([run]).splitlines()


def test_the_header_names_versions_cluster_and_changed_parameters(tmp_path: Path) -> None:
    run = read_run(_with_identity(write_run(tmp_path, RUN_PASS)))
    rows = dict(header_rows(run))
    assert rows["meshbook"] == "0.1.0, commit 0123456789abcdef0123456789abcdef01234567"
    assert rows["kube context"] == "meshbook-sandbox"
    assert rows["API server"] == "https://127.0.0.1:40001"
    assert rows["cluster identity"] == (
        "kube-system namespace UID 35c9cfdf-212a-45d1-bcfd-ce78c4baf559; meshbook sandbox run-20250101T000000Z-aaaaaa"
    )
    assert rows["Kubernetes"] == "v1.33.0"
    assert rows["Istio (istiod image)"] == "istiod/discovery: docker.io/istio/pilot:1.30.0 (asked for 1.30.0)"
    assert "ghcr.io/bank-vaults/vault-operator:v1.24.0" in rows["Bank-Vaults (operator and webhook images)"]
    assert "vault-operator chart 1.24.0" in rows["Bank-Vaults (operator and webhook images)"]
    # the CR's image and the server's own answer, both, and that they differ
    assert rows["Vault"].startswith("Vault CR image hashicorp/vault:1.21.4; the server reports version 2.7.2")
    assert "the sandbox runs OpenBao behind the CR" in rows["Vault"]
    assert rows["parameters changed from the defaults"] == "timeouts.pods_ready=60.0; vault.permissive=False"
    page = render_html([run])
    header = _section(page, '<section class="identity" id="identity">', "</section>")
    for value in rows.values():
        assert html.escape(value) in header
    suite = ET.fromstring(render_junit([run]))[0]
    properties = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
    assert properties["Vault"] == rows["Vault"]
    assert properties["cluster identity"] == rows["cluster identity"]
    md = render_markdown([run])
    assert "| Vault | Vault CR image hashicorp/vault:1.21.4; the server reports version 2.7.2" in md


def test_the_run_identity_helpers() -> None:
    assert changed_parameters(RunbookParams.model_validate({})) == {}
    changed = changed_parameters(RunbookParams.model_validate({"vault": {"permissive": False}}))
    assert changed == {"vault.permissive": False}
    build = meshbook_build()
    assert build["version"]
    assert build["commit"] == NOT_A_CHECKOUT or re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", build["commit"])
    records = [
        {"kind": "vault_status", "observed": {"initialized": True}},
        {"kind": "vault_status", "observed": {"version": "2.7.2", "cluster_id": "c"}},
    ]
    assert vault_server_versions(records[:1]) == {}
    assert vault_server_versions(records) == {"version": "2.7.2", "cluster_id": "c"}


# -- 2. delivery evidence and restarts ----------------------------------------------------------------------


def test_a_failed_delivery_never_shows_the_expected_fingerprint_as_observed(tmp_path: Path) -> None:
    run = read_run(write_run(tmp_path, RUN_FAIL, vault_permissive=False))
    expected = fingerprint(SECRET, FP_KEY)
    failed = [r for r in run.rows.deliveries if r["outcome"] == "fail"]
    assert [r["container"] for r in failed] == ["app", "init-ubuntu"]
    for row in failed:
        verdict = delivery_verdict(row)
        assert (verdict.expected, verdict.observed, verdict.ok) == (expected, NOTHING_DELIVERED, False)
    literal = {**failed[0], "literal_reference": True}
    assert (delivery_verdict(literal).observed, delivery_verdict(literal).verdict) == (
        LITERAL_REFERENCE,
        "not delivered: the webhook did not mutate it",
    )
    other = {**failed[0], "delivered": True, "matches_vault": False, "fingerprint": "hmac-sha256:" + "0" * 64}
    assert delivery_verdict(other).verdict == "a different value was delivered"
    old = {**failed[0], "expected_fingerprint": None}
    assert delivery_verdict(old).expected == "not recorded"
    passed = [r for r in run.rows.deliveries if r["outcome"] == "pass"]
    assert {(v.expected, v.observed, v.verdict) for v in map(delivery_verdict, passed)} == {
        (expected, expected, "delivered, matches Vault")
    }


def test_a_literal_reference_is_shown_as_such(tmp_path: Path) -> None:
    run = write_run(tmp_path, RUN_FAIL, vault_permissive=False)
    evidence = run / "evidence.jsonl"
    records = [json.loads(line) for line in evidence.read_text().splitlines()]
    for record in records:  # the webhook did not mutate the app: it printed `vault:PATH#KEY`
        if record["subject"] == "app/app/app" and record["outcome"] == "fail":
            record["observed"]["literal_reference"] = True
    evidence.write_text("".join(json.dumps(r) + "\n" for r in records))
    page = render_html([read_run(run)])
    expected = fingerprint(SECRET, FP_KEY)
    assert (
        f'<td class="fp">{expected}</td><td class="fp flag">{html.escape(LITERAL_REFERENCE)}</td>'
        "<td>not delivered: the webhook did not mutate it</td>"
    ) in page


def test_an_unexplained_restart_is_flagged() -> None:
    pod = {"status": "Running", "outcome": "pass", "sidecar": True, "restarts": 2}
    assert [(n.expected, n.text) for n in restart_notes(pod)] == [
        (False, "2 restart(s), unexplained: which container and why was not recorded")
    ]
    crash = {
        "container": "app",
        "restarts": 2,
        "exit_code": 137,
        "reason": "OOMKilled",
        "vault_env_token_failed": False,
    }
    assert [(n.expected, n.text) for n in restart_notes({**pod, "restarted": [crash]})] == [
        (False, "app restarted 2x, unexpected (exit code 137, OOMKilled)")
    ]
    no_proxy = {**pod, "sidecar": False, "restarted": [{**crash, "vault_env_token_failed": True}]}
    assert [n.expected for n in restart_notes(no_proxy)] == [False]
    assert restart_notes({**pod, "restarts": 0}) == []


def test_scenario_3s_restarts_are_explained_as_waiting_for_the_proxy(tmp_path: Path) -> None:
    page = render_html([read_run(write_run(tmp_path, RUN_PASS))])
    s3 = _section(page, 'id="nb-30-scenario-3"', "<h3>Secret delivery</h3>")
    assert (
        '<td>7</td><td class="reason">app restarted 7x, expected: it waited for the proxy (vault-env could not '
        "reach Vault before istio-proxy was ready, exit code 1, Error; holdApplicationUntilProxyStarts avoids it)</td>"
    ) in s3
    assert "flag" not in s3


def test_delivery_columns_side_by_side_in_every_format(tmp_path: Path) -> None:
    run = read_run(write_run(tmp_path, RUN_FAIL, vault_permissive=False))
    expected = fingerprint(SECRET, FP_KEY)
    page = render_html([run])
    s2 = _section(page, 'id="nb-20-scenario-2"', 'id="nb-30-scenario-3"')
    assert "<th>expected fingerprint</th><th>observed fingerprint</th><th>verdict</th>" in s2
    assert s2.count(f'<td class="fp">{expected}</td><td class="fp flag">{NOTHING_DELIVERED}</td>') == 2
    md = render_markdown([run])
    assert f"| app/app/app | {expected} | {NOTHING_DELIVERED} | not delivered | ❌ fail |" in md


# -- 3. one root cause per failure ----------------------------------------------------------------------------


def test_the_root_cause_is_stated_once_with_deciding_objects_and_remedy(tmp_path: Path) -> None:
    page = render_html([read_run(write_run(tmp_path, RUN_FAIL, vault_permissive=False))])
    card = _section(page, '<div class="failure">', "<table>")
    strict = html.escape(STRICT_REASON)
    assert card.count(strict) == 1  # was three times: the notebook's reason and each delivery's
    root = card.index("<strong>Root cause:</strong> Vault is in the mesh under STRICT mTLS and the app is outside it")
    assert root < card.index(strict) < card.index("What to do:") < card.index("<strong>Details</strong>")
    deciding = _section(card, "<strong>Deciding objects:</strong>", "</p>")
    for name in ("PeerAuthentication istio-system/default", "destination vault/vault-0:8200",
                 "source pod app/app-6f7e8d9c0b-fffff"):  # fmt: skip
        assert f"<code>{name}</code>" in deciding
    details = card[card.index("<strong>Details</strong>") :]
    assert details.count("‹the root cause above›") == 3  # the notebook's reason and both deliveries point back
    section = _section(page, 'id="nb-20-scenario-2"', "<h3>Mesh policy</h3>")
    assert '(<a href="#rc-20-scenario-2">the deciding objects and the remedy</a>)' in section
    assert strict not in section
    assert 'id="rc-20-scenario-2"' in page


def test_a_timeouts_root_cause_names_the_pods_it_waited_for() -> None:
    from meshbook.report.outcomes import NotebookOutcome
    from meshbook.report.rootcause import root_cause
    from meshbook.report.rundir import NotebookRun

    reason = (
        "10-scenario-1: 1 expectation(s) failed: timed out after 180s waiting for 1 Ready pod with "
        "app.kubernetes.io/name=vault in namespace vault; last seen: vault-0 2/3 Running (restarts 0)"
    )
    passed = NotebookRun("10-scenario-1", "pass", 1.0, None, "", "", "", {})
    assert root_cause(NotebookOutcome(passed, [], [])) is None
    failed = NotebookRun("10-scenario-1", "fail", 1.0, 21, "ExpectationFailed", reason, "", {})
    cause = root_cause(NotebookOutcome(failed, [], []))
    assert cause is not None
    assert cause.problem.startswith("A wait ran out of time")
    assert cause.deciding == ["pod vault/vault-0"]
    assert "timeouts.pods_ready" in cause.remedy
    assert cause.shorten(reason) == "‹the root cause above›"


def test_a_recorded_deciding_object_comes_first() -> None:
    """A failed delivery records the connectivity model's deciding object; the root cause names it even
    when the reason's words do not."""
    from meshbook.report.outcomes import NotebookOutcome
    from meshbook.report.rootcause import root_cause
    from meshbook.report.rundir import NotebookRun

    record = {
        "kind": "secret_delivery",
        "subject": "app/app/app",
        "reason": "connection refused by Vault's sidecar",
        "observed": {"delivered": False, "deciding_object": "PeerAuthentication vault/strict"},
    }
    failed = NotebookRun("20-scenario-2", "fail", 1.0, 9, "ExpectationFailed", "", "", {})
    cause = root_cause(NotebookOutcome(failed, [record], []))
    assert cause is not None and cause.deciding == ["PeerAuthentication vault/strict"]
    assert cause.evidence == "connection refused by Vault's sidecar"


def test_the_leak_scans_result_is_one_line_in_the_header(tmp_path: Path) -> None:
    run = write_run(tmp_path, RUN_PASS)
    summary = json.loads((run / "summary.json").read_text())
    summary["leak_scan"] = {"classes": {"Vault root token": 1}, "encodings": ["plain"], "files": 3, "bytes": 10}
    (run / "summary.json").write_text(json.dumps(summary))
    data = read_run(run)
    page, md = render_html([data]), render_markdown([data])
    headline = dict(header_rows(data))["leak scan"]
    assert headline.startswith("Leak scan: 1 known secret values in 1 classes") and "no leak found" in headline
    assert page.count(html.escape(headline)) == 1 and md.count(headline) == 1


def test_markdown_states_the_root_cause_once(tmp_path: Path) -> None:
    md = render_markdown([read_run(write_run(tmp_path, RUN_FAIL, vault_permissive=False))])
    summary = md[md.index("## Outcome summary") : md.index("| notebook | title |")]
    assert summary.count(STRICT_REASON) == 1
    assert summary.index("**Root cause:**") < summary.index("**What to do:**") < summary.index("Details:")


# -- 4. the guide mapped to today -----------------------------------------------------------------------------


def _sections(notebook: Path) -> dict[str, list[str]]:
    """`## heading` -> the code cells under it, in a notebook."""
    cells = json.loads(notebook.read_text())["cells"]
    found: dict[str, list[str]] = {}
    heading = ""
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            headings = [line[3:].strip() for line in source.splitlines() if line.startswith("## ")]
            heading = headings[-1] if headings else heading
        else:
            found.setdefault(heading, []).append(source)
    return found


def test_a_cell_that_does_not_exist_is_caught() -> None:
    sections = _sections(ROOT / "notebooks" / "00-prereq-istio.ipynb")
    assert not any('rb.step("no such step")' in code for code in sections.get("Install Istio", []))
    assert "No such heading" not in sections


def test_every_cell_the_guide_map_names_exists() -> None:
    for entry in GUIDE_MAP:
        assert entry.cells, entry.guide
        for cell in entry.cells:
            sections = _sections(ROOT / "notebooks" / f"{cell.notebook}.ipynb")
            assert cell.heading in sections, cell.text()
            assert any(cell.code in code for code in sections[cell.heading]), cell.text()


SEED_COMMANDS = (  # every command and object of the guide, as it writes them
    "backyards install", "kubectl patch istio", "backyards mtls require mesh", "kubectl get meshpolicy",
    "meshpolicy", "backyards mtls get mesh", "kubectl create namespace", "kubectl label namespace", "policy",
    "backyards mtls allow vault-system/vault-secrets-webhook", "helm repo add", "helm upgrade vault-secrets-webhook",
    "helm upgrade vault-operator", "kubectl apply -f rbac.yaml", "kubectl get pods", "policy default",
    "backyards mtls allow vault", "backyards sidecar-proxy auto-inject", "kubectl apply -f app.yaml", "kubectl logs",
    "kubectl delete pods", "getbackyards",
)  # fmt: skip


def test_the_map_covers_every_object_and_command_of_the_guide() -> None:
    assert find_entries("no such command") == []
    for name in SEED_COMMANDS:
        assert find_entries(name), name
    replaced = {e.guide.split(" ")[0] for e in GUIDE_MAP if e.replaced}
    assert {"MeshPolicy", "Policy", "backyards", "helm", "curl", "kubectl"} <= replaced


def test_the_docs_page_is_the_map() -> None:
    assert (ROOT / "docs" / "guide-to-today.md").read_text(encoding="utf-8") == markdown_page()


def test_the_report_ends_with_the_guide_page(tmp_path: Path) -> None:
    page = render_html([read_run(write_run(tmp_path, RUN_PASS))])
    guide = _section(page, '<section class="guide" id="guide"><h2>From the guide to today</h2>', "</section>")
    for entry in GUIDE_MAP:
        assert html.escape(entry.guide) in guide
        assert html.escape(entry.cells[0].text()) in guide
    assert "## From the guide to today" in render_markdown([read_run(tmp_path / RUN_PASS)])


def test_explain_an_unknown_name_exits_2_listing_the_known(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("explain", "istio-operator-crd-v2")
    assert (result.code, result.out) == (2, "")
    assert result.err.startswith("meshbook: explain 'istio-operator-crd-v2': not an object or command of the guide")
    assert all(name in result.err for name in known_names())
    assert run_cli("explain").code == 2


def test_explain_prints_the_mapping(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("explain", "MeshPolicy")
    assert result.code == 0, result.err
    assert result.out.splitlines()[:3] == [
        "the guide: MeshPolicy default (authentication.istio.io/v1alpha1); kubectl get meshpolicy default -o yaml",
        "today:     removed in Istio 1.6: PeerAuthentication default in the root namespace istio-system; read it "
        "with kubectl get peerauthentication -n istio-system default -o yaml",
        'notebook:  00-prereq-istio › Require mTLS in the whole mesh › rb.step("require mTLS").require_mtls()',
    ]
    several = run_cli("explain", "backyards mtls")
    assert several.code == 0
    assert [line for line in several.out.splitlines() if line.startswith("the guide:")] == [
        "the guide: backyards mtls require mesh",
        "the guide: backyards mtls get mesh",
        "the guide: backyards mtls allow vault-system/vault-secrets-webhook",
        "the guide: backyards mtls allow vault",
    ]
    assert run_cli("explain", "backyards", "mtls").out == several.out  # unquoted words are one name
    assert run_cli("explain", "--markdown").out == markdown_page()


def test_no_secret_in_any_report_of_a_run_with_identity(tmp_path: Path) -> None:
    run = _with_identity(write_run(tmp_path, RUN_FAIL, vault_permissive=False))
    for path in build_reports([run]):
        text = path.read_text(encoding="utf-8")
        assert SECRET not in text and html.escape(SECRET) not in text, path.name
