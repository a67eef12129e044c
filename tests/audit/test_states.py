"""The audit over the guide's states on one sandbox: no error in the three scenarios done right, and for each
misconfiguration exactly its finding, naming the right objects (the audit functions called directly)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from meshbook.audit.codes import CHECKS, Severity
from meshbook.audit.discover import USER_AGENT, Discovery, discover
from meshbook.audit.findings import Audit, Finding, audit
from meshbook.sandbox import control
from meshbook.sandbox.server import REQUEST_LOG
from tests.audit.states import STATES, Guide, State
from tests.sandbox.conftest import start_sandbox

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def guide(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guide]:
    running = start_sandbox(tmp_path_factory.mktemp("audit"))
    try:
        yield Guide(running.api, running.info.state_dir, running.kubeconfig)
    finally:
        running.api.close()
        control.down(running.info.state_dir)


def found(findings: list[Finding]) -> set[tuple[str, str]]:
    """(code, subject) of each finding that is not a skipped check (MB0100 is info)."""
    return {(f.code, f.subject) for f in findings if f.severity is not Severity.INFO}


def matches(expected: frozenset[tuple[str, str]], findings: list[Finding]) -> bool:
    got = found(findings)
    return len(got) == len(expected) and all(
        any(code == c and subject.startswith(prefix) for c, subject in got) for code, prefix in expected
    )


def unserved(found: Discovery, feature: str) -> bool:
    return any(feature in gap.what and "HTTP 404" in gap.reason for gap in found.gaps)


def audit_state(guide: Guide, state: State) -> Audit:
    guide.reach(state.scenario)
    if state.needs and unserved(discover(guide.api), state.needs):
        pytest.skip(f"the sandbox serves no {state.needs} (authorization.k8s.io/v1): RBAC comes with branch ha")
    state.make(guide)
    try:
        return audit(discover(guide.api))
    finally:
        state.undo(guide)


def test_the_table_gives_every_code_a_severity_title_and_remedy() -> None:
    assert all(c.code.startswith("MB01") and c.title and c.remedy for c in CHECKS.values())


def test_an_empty_discovery_finds_nothing() -> None:
    assert audit(Discovery(server="x")).findings == []


@pytest.mark.parametrize("state", STATES, ids=[s.name for s in STATES])
def test_state_has_exactly_its_findings(guide: Guide, state: State) -> None:
    result = audit_state(guide, state)
    lines = "\n".join(f.line() for f in result.findings)
    assert matches(state.expected, result.findings), f"{state.name}: expected {sorted(state.expected)}, got:\n{lines}"
    for finding in result.findings:
        if finding.severity is not Severity.INFO:
            assert finding.objects, finding.line()


def test_each_container_asking_for_a_secret_gets_the_models_verdict(guide: Guide) -> None:
    guide.reach(3)
    result = audit(discover(guide.api))
    verdicts = {(v.container, v.init): v for v in result.containers if v.pod.startswith("app/")}
    assert set(verdicts) == {("init-ubuntu", True), ("app", False)}
    assert all(v.mutated and v.delivered for v in verdicts.values())
    assert "PeerAuthentication vault/default PERMISSIVE" in verdicts["init-ubuntu", True].reason


def test_findings_name_the_deciding_policy(guide: Guide) -> None:
    state = next(s for s in STATES if s.expected == {("MB0102", "Pod app/app-")})
    result = audit_state(guide, state)
    (finding,) = [f for f in result.findings if f.code == "MB0102"]
    assert "init container init-ubuntu" in finding.message
    assert "PeerAuthentication istio-system/default" in finding.objects
    assert finding.line().startswith("Error [MB0102] (Pod app/app-")


# -- `meshbook audit` end to end (papermill), read-only, and a fleet --------------------------------------------

BROKEN = "Error [MB0101] (MutatingWebhookConfiguration vault-secrets-webhook)"


def meshbook_audit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshbook", "audit", *args], capture_output=True, text=True, timeout=600, check=False
    )


def resource_versions(guide: Guide) -> dict[str, str]:
    """namespace/name -> resourceVersion of every object the audit lists (Secrets too: none may move)."""
    found = discover(guide.api)
    objects = [
        *found.namespaces,
        *found.pods,
        *found.services,
        *found.deployments,
        *found.statefulsets,
        *found.peer_authentications,
        *found.webhook_configurations,
        *found.vaults,
    ]
    secrets = json.loads(client.CoreV1Api(guide.api).list_secret_for_all_namespaces(_preload_content=False).data)
    objects += secrets["items"]
    return {
        f"{o.get('kind', '')}/{o['metadata'].get('namespace', '')}/{o['metadata']['name']}": str(
            o["metadata"]["resourceVersion"]
        )
        for o in objects
    }


@pytest.fixture(scope="module")
def broken_webhook(guide: Guide) -> Iterator[Guide]:
    """Scenario 3, then the webhook's PERMISSIVE policy deleted by hand (a new user's first break)."""
    guide.reach(3)
    guide.delete_policy("vault-system", "vault-secrets-webhook")
    try:
        yield guide
    finally:
        guide.apply("webhook-permissive")


def test_meshbook_audit_prints_its_findings_and_writes_a_report_without_writing_to_the_cluster(
    broken_webhook: Guide, tmp_path: Path
) -> None:
    log = Path(broken_webhook.state_dir) / REQUEST_LOG
    before, seen = resource_versions(broken_webhook), log.read_text().count("\n")
    proc = meshbook_audit("--kubeconfig", str(broken_webhook.kubeconfig), "--out", str(tmp_path))
    requests = log.read_text().splitlines()[seen:]
    assert resource_versions(broken_webhook) == before
    writes = [
        line
        for line in requests
        if not line.startswith("GET ")
        and not line.startswith("POST /apis/authorization.k8s.io/v1/subjectaccessreviews ")
    ]
    assert writes == [], "the audit sent more than reads"
    assert any(line.endswith(USER_AGENT) for line in requests)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert BROKEN in proc.stdout
    run = tmp_path / "latest"
    html = (run / "report.html").read_text()
    assert "Audit findings" in html and "MB0101" in html and "meshbook manifests webhook-permissive" in html
    junit = ET.parse(run / "junit.xml").getroot()
    (suite,) = [s for s in junit.iter("testsuite") if str(s.get("name")).startswith("audit ")]
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["audit"].find("error") is None
    assert cases[f"MB0101 {CHECKS['MB0101'].title}"].find("failure") is not None
    assert all(c.find("failure") is None for name, c in cases.items() if not str(name).startswith("MB0101"))
    records = [json.loads(line) for line in (run / "evidence.jsonl").read_text().splitlines()]
    assert {r["observed"]["code"] for r in records if r["kind"] == "finding"} >= {"MB0101"}


def test_a_fleet_with_a_stopped_context_fills_two_columns_and_fails_one_with_exit_3(
    broken_webhook: Guide, tmp_path: Path
) -> None:
    empty = start_sandbox(tmp_path / "empty")
    stopped = start_sandbox(tmp_path / "stopped")
    try:
        control.down(stopped.info.state_dir)
        merged = tmp_path / "fleet-kubeconfig"
        merged.write_text(
            yaml.safe_dump(
                merge_kubeconfigs(
                    {"guide": broken_webhook.kubeconfig, "empty": empty.kubeconfig, "stopped": stopped.kubeconfig}
                )
            )
        )
        proc = meshbook_audit("--kubeconfig", str(merged), "--all-contexts", "--out", str(tmp_path / "runs"))
    finally:
        empty.api.close()
        stopped.api.close()
        control.down(empty.info.state_dir)
    # The stopped context fails its column (exit 3 there), not the fleet: the guide's finding decides.
    assert proc.returncode == 1, proc.stdout + proc.stderr
    fleet = tmp_path / "runs" / "latest"
    summary = json.loads((fleet / "fleet.json").read_text())
    assert {c["context"]: c["exit_code"] for c in summary["contexts"]} == {"guide": 1, "empty": 0, "stopped": 3}
    html = (fleet / "report.html").read_text()
    assert html.count("Audit findings") == 1 and "exit 3" in html
    suites = {s.get("name"): s for s in ET.parse(fleet / "junit.xml").getroot().iter("testsuite")}
    assert {"audit guide", "audit empty", "audit stopped"} <= set(suites)
    assert suites["audit stopped"].get("errors") == "1"
    assert suites["audit empty"].get("failures") == "0" and suites["audit guide"].get("failures") == "1"
    assert BROKEN in proc.stdout


def merge_kubeconfigs(files: dict[str, Path]) -> dict[str, Any]:
    """One kubeconfig whose contexts are the given names, each the (only) context of its file."""
    merged: dict[str, Any] = {"apiVersion": "v1", "kind": "Config", "clusters": [], "users": [], "contexts": []}
    for name, path in files.items():
        config = yaml.safe_load(path.read_text())
        merged["clusters"].append({"name": name, "cluster": config["clusters"][0]["cluster"]})
        merged["users"].append({"name": name, "user": config["users"][0]["user"]})
        merged["contexts"].append({"name": name, "context": {"cluster": name, "user": name}})
    merged["current-context"] = next(iter(files))
    return merged


# -- least privilege: a token bound only to `meshbook manifests auditor-rbac` ----------------------------------


def auditor_api(guide: Guide) -> client.ApiClient:
    """An ApiClient with a service-account token of meshbook-audit/meshbook-auditor (skips without RBAC)."""
    guide.apply("auditor-rbac")
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}}
    issued = client.CoreV1Api(guide.api).create_namespaced_service_account_token(
        "meshbook-auditor", "meshbook-audit", request
    )
    configuration = copy.deepcopy(guide.api.configuration)
    configuration.api_key = {"BearerToken": f"Bearer {issued.status.token}"}  # kubernetes 37's key name
    configuration.refresh_api_key_hook = None  # it would put the kubeconfig's token back
    api = client.ApiClient(configuration)
    try:
        client.CoreV1Api(api).list_secret_for_all_namespaces(_request_timeout=30)
    except client.exceptions.ApiException as exc:
        if exc.status == 403:
            return api
        raise
    api.close()
    pytest.skip(
        "the sandbox does not enforce RBAC (every authenticated caller may read Secrets): RBAC comes with branch ha"
    )


def test_the_audit_works_with_a_token_bound_only_to_auditor_rbac(guide: Guide) -> None:
    guide.reach(3)
    api = auditor_api(guide)
    try:
        as_auditor = audit(discover(api))
    finally:
        api.close()
    as_admin = audit(discover(guide.api))
    assert [f.code for f in as_auditor.findings if f.code == "MB0100"] == []
    assert found(as_auditor.findings) == found(as_admin.findings)
    assert [(v.pod, v.container, v.delivered) for v in as_auditor.containers] == [
        (v.pod, v.container, v.delivered) for v in as_admin.containers
    ]


def test_a_missing_permission_names_the_check_that_did_not_run(guide: Guide) -> None:
    guide.reach(3)
    api = auditor_api(guide)
    rbac = client.RbacAuthorizationV1Api(guide.api)
    role = rbac.read_cluster_role("meshbook-auditor")
    role.rules = [r for r in role.rules if "vaults" not in (r.resources or [])]
    rbac.replace_cluster_role("meshbook-auditor", role)
    try:
        result = audit(discover(api))
    finally:
        api.close()
        guide.apply("auditor-rbac")
    (skipped,) = [f for f in result.findings if f.code == "MB0100"]
    assert "list vaults.vault.banzaicloud.com" in skipped.message and "HTTP 403" in skipped.message
    assert "not checked: Vault CR" in skipped.message
