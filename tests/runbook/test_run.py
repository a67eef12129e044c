"""`meshbook run` end to end: the default run's bundle, bad input, an unreachable cluster, a timeout.

Every case runs `python -m meshbook run` as a subprocess into `tmp_path` (DESIGN: run directory, exit
codes). Cases that execute notebooks are `slow`; each runs only the runbooks it needs.
"""

from __future__ import annotations

import base64
import json
import shutil
import sys
from pathlib import Path

import pytest

from meshbook.evidence import check_record
from tests.runbook import (
    ALL_RUNBOOKS,
    SCENARIOS,
    UP_TO_SCENARIO_1,
    Run,
    error_cell,
    hermetic_env,
    meshbook,
    pod_ready_by_workload,
    run_args,
    run_dirs,
)

SECRET = "s3cr3t"  # the demo's AWS_SECRET_ACCESS_KEY in Vault (meshbook/manifests/vault.py)
SECRET_B64 = base64.b64encode(SECRET.encode()).decode()

# DESIGN's runbooks table: READY per scenario for vault-0, the configurer and the app.
EXPECTED_READY = {
    "10-scenario-1": {"vault-0": ["3/3"], "configurer": ["1/1"], "app": ["2/2"]},
    "20-scenario-2": {"vault-0": ["4/4"], "configurer": ["2/2"], "app": ["1/1"]},
    "30-scenario-3": {"vault-0": ["4/4"], "configurer": ["2/2"], "app": ["2/2"]},
}

DEAD_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: dead
  cluster:
    server: https://127.0.0.1:1
    insecure-skip-tls-verify: true
users:
- name: dead
  user:
    token: not-a-real-token
contexts:
- name: dead
  context: {cluster: dead, user: dead}
current-context: dead
"""


# -- the default run -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    home = tmp_path_factory.mktemp("default-run")
    run = meshbook(home, *run_args(home / "runs"))
    assert run.run_dir is not None, run.describe()
    return run


@pytest.mark.slow
def test_default_run_exits_0_and_every_runbook_passes(default_run: Run) -> None:
    assert default_run.code == 0, default_run.describe()
    assert default_run.summary["exit_code"] == 0
    assert default_run.summary["run_id"] == default_run.run_dir.name  # type: ignore[union-attr]
    assert default_run.outcomes() == dict.fromkeys(ALL_RUNBOOKS, "pass")
    assert [(n["cell"], n["error"], n["reason"]) for n in default_run.summary["notebooks"]] == [(None, "", "")] * 5


@pytest.mark.slow
def test_default_run_shows_each_step_of_the_running_notebook(default_run: Run) -> None:
    for step in ("step: install Istio", "step: require mTLS", "step: install Bank-Vaults", "step: recreate app"):
        assert f"      {step}\n" in default_run.out, default_run.describe()


@pytest.mark.slow
def test_default_run_directory_layout(default_run: Run) -> None:
    run_dir = default_run.run_dir
    assert run_dir is not None
    out = run_dir.parent
    assert run_dirs(out) == [run_dir]
    latest = out / "latest"
    assert latest.is_symlink()
    assert latest.resolve() == run_dir.resolve()
    assert not (run_dir / "RUNNING").exists()
    assert not (run_dir / "INCOMPLETE").exists()
    assert (run_dir / "summary.json").is_file()
    assert (run_dir / "evidence.jsonl").is_file()
    assert sorted(p.name for p in (run_dir / "notebooks").iterdir()) == [f"{name}.ipynb" for name in ALL_RUNBOOKS]


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL_RUNBOOKS)
def test_default_run_notebooks_are_executed_with_injected_parameters(default_run: Run, name: str) -> None:
    assert default_run.run_dir is not None
    nb = json.loads((default_run.run_dir / "notebooks" / f"{name}.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    injected = [c for c in code if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1
    assert 'target = "sandbox"' in "".join(injected[0]["source"])
    # Executed: every code cell ran, in order, and none raised.
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))
    assert [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"] == []
    assert nb["metadata"]["papermill"]["exception"] is None  # papermill sets True when a cell raised


@pytest.mark.slow
def test_default_run_evidence_records_validate(default_run: Run) -> None:
    assert default_run.evidence, "evidence.jsonl is empty"
    problems = {r.get("seq"): check_record(r) for r in default_run.evidence}
    assert {seq: p for seq, p in problems.items() if p} == {}
    assert [r["seq"] for r in default_run.evidence] == list(range(1, len(default_run.evidence) + 1))
    assert {r["run_id"] for r in default_run.evidence} == {default_run.summary["run_id"]}
    assert {r["notebook"] for r in default_run.evidence} == set(ALL_RUNBOOKS)
    assert [r for r in default_run.evidence if r["outcome"] == "fail"] == []


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_default_run_pod_states_per_scenario(default_run: Run, scenario: str) -> None:
    assert pod_ready_by_workload(default_run, scenario) == EXPECTED_READY[scenario]
    records = default_run.records("pod_state", scenario)
    assert {(r["outcome"], r["observed"]["status"]) for r in records} == {("pass", "Running")}


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_default_run_secret_delivered_per_scenario(default_run: Run, scenario: str) -> None:
    deliveries = default_run.deliveries(scenario)
    assert sorted(deliveries) == ["app", "init-ubuntu"]
    for container, records in deliveries.items():
        assert len(records) == 1, records
        record = records[0]
        assert record["subject"] == f"app/app/{container}"
        assert record["outcome"] == "pass"
        observed = record["observed"]
        assert observed["container"] == container
        assert (observed["delivered"], observed["matches_vault"]) == (True, True)
        assert observed["fingerprint"].startswith("hmac-sha256:")


@pytest.mark.slow
def test_default_run_directory_holds_no_secret(default_run: Run) -> None:
    assert default_run.run_dir is not None
    files = [p for p in default_run.run_dir.rglob("*") if p.is_file()]
    assert len(files) >= 7  # summary, evidence, five notebooks
    leaks = [
        (str(p.relative_to(default_run.run_dir)), needle)
        for p in files
        for needle in (SECRET, SECRET_B64)
        if needle.encode() in p.read_bytes()
    ]
    assert leaks == []


@pytest.mark.slow
def test_default_run_states_the_leak_scans_scope_without_false_positives(default_run: Run) -> None:
    """The manifest and the top of report.md list classes, value counts and encodings; nothing found."""
    assert default_run.run_dir is not None
    manifest = json.loads((default_run.run_dir / "manifest.json").read_text())
    assert manifest["leaks"] == []  # fingerprints, resourceVersions and uids are no secrets
    scope = manifest["leak_scan"]
    classes = scope["classes"]
    assert classes["kubeconfig bearer token"] == 1 and classes["TLS private key"] >= 4
    assert classes["service-account signing key"] == 1 and classes["Vault unseal key"] == 5
    assert classes["Vault root token"] == 1 and classes["Vault KV value"] == 1
    assert {"plain", "base64", "base64-embedded", "hex", "url", "json"} <= set(scope["encodings"])
    assert scope["not_read"] == [] and scope["files"] >= 7
    top = (default_run.run_dir / "report.md").read_text().split("| notebook |")[0]
    assert "Leak scan: " in top and "no leak found" in top and "| Vault unseal key | 5 |" in top


# -- bad input: exit 2, nothing executed, no run directory ------------------------------------------------


def _assert_bad_input(run: Run, out: Path, *names: str) -> None:
    assert run.code == 2, run.describe()
    assert run.run_dir is None
    assert not out.exists(), sorted(p.name for p in out.iterdir())
    for name in names:
        assert name in run.err, run.describe()


def test_bad_enum_value_exits_2_naming_the_key(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    run = meshbook(tmp_path, *run_args(out, "istio.sidecar_mode=nativ"))
    _assert_bad_input(run, out, "istio.sidecar_mode", "nativ")
    assert run.err.strip() == (
        "meshbook: --set istio.sidecar_mode=nativ: istio.sidecar_mode: "
        'expected one of classic, cni, native, got "nativ"'
    )


def test_params_file_with_yaml_error_exits_2_naming_the_file(tmp_path: Path) -> None:
    params = tmp_path / "broken.yaml"
    params.write_text("istio:\n  sidecar_mode: [native\n")
    out = tmp_path / "runs"
    run = meshbook(tmp_path, *run_args(out, extra=("--params", str(params))))
    _assert_bad_input(run, out, str(params))
    assert run.err.strip() == f"meshbook: {params}:3:1: YAML syntax error: expected ',' or ']', but got '<stream end>'"


def test_unknown_runbook_exits_2_naming_it(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    run = meshbook(tmp_path, *run_args(out, only=("nope",)))
    _assert_bad_input(run, out, "--only nope")
    catalogue = (*ALL_RUNBOOKS, "40-audit")  # the audit is in the catalogue, not in the default run
    assert run.err.strip() == f"meshbook: --only nope: expected one of {', '.join(catalogue)}"


# -- an unreachable cluster: exit 3, the notebook and cell named, the run stops ----------------------------


@pytest.fixture(scope="module")
def unreachable_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    home = tmp_path_factory.mktemp("unreachable")
    kubeconfig = home / "dead-kubeconfig"
    kubeconfig.write_text(DEAD_KUBECONFIG)
    run = meshbook(home, *run_args(home / "runs", "target=live", f"kubeconfig={kubeconfig}"))
    assert run.run_dir is not None, run.describe()
    return run


def _unreachable_entry(run: Run) -> dict[str, object]:
    entries = [n for n in run.summary["notebooks"] if n["error"] == "UnreachableError"]
    assert len(entries) == 1, run.summary
    return entries[0]


@pytest.mark.slow
def test_unreachable_cluster_exits_3_and_names_the_notebook(unreachable_run: Run) -> None:
    run = unreachable_run
    assert run.code == 3, run.describe()
    assert run.summary["exit_code"] == 3
    entry = _unreachable_entry(run)
    assert entry["outcome"] == "fail"
    assert isinstance(entry["cell"], int)
    assert str(entry["reason"]).startswith("cannot reach the cluster at https://127.0.0.1:1: ")
    assert "Connection refused" in str(entry["reason"])
    assert str(entry["runbook"]) in run.out  # the printed summary names it too
    assert not (run.run_dir / "RUNNING").exists()  # type: ignore[operator]
    # The failing cell raised UnreachableError in the executed notebook ...
    executed = run.run_dir / "notebooks" / f"{entry['runbook']}.ipynb"  # type: ignore[operator]
    assert error_cell(executed)[2] == "UnreachableError"
    # ... and no later runbook was executed (DESIGN: an unreachable cluster ends the run).
    names = [n["runbook"] for n in run.summary["notebooks"]]
    later = names[names.index(entry["runbook"]) + 1 :]
    assert later, "the unreachable notebook was the last one"
    assert {n["runbook"]: n["reason"] for n in run.summary["notebooks"] if n["runbook"] in later} == dict.fromkeys(
        later, f"not run: {entry['runbook']} ended the run"
    )
    assert [p.name for p in (run.run_dir / "notebooks").iterdir() if p.stem in later] == []  # type: ignore[operator]


@pytest.mark.slow
def test_runbooks_after_an_unreachable_cluster_are_reported_skipped(unreachable_run: Run) -> None:
    names = [n["runbook"] for n in unreachable_run.summary["notebooks"]]
    later = names[names.index(_unreachable_entry(unreachable_run)["runbook"]) + 1 :]
    assert {n: unreachable_run.outcomes()[n] for n in later} == dict.fromkeys(later, "skipped")


@pytest.mark.slow
def test_summary_cell_points_at_the_failing_cell_of_the_executed_notebook(unreachable_run: Run) -> None:
    entry = _unreachable_entry(unreachable_run)
    index, execution_count, _ = error_cell(
        unreachable_run.run_dir / "notebooks" / f"{entry['runbook']}.ipynb"  # type: ignore[operator]
    )
    assert entry["cell"] in (index, execution_count)


@pytest.mark.slow
def test_a_meshbook_error_in_a_cell_exits_with_its_declared_code(tmp_path: Path) -> None:
    venv_bin = str(Path(sys.executable).parent)
    if shutil.which("istioctl", path=venv_bin):
        pytest.skip("istioctl is installed in the interpreter's bin directory")
    from meshbook.sandbox import control

    # A cluster that answers (the run probes it first), treated as live: the install needs istioctl.
    info, _ = control.up(tmp_path / "live-cluster")
    try:
        env = hermetic_env(tmp_path, PATH=venv_bin)  # no istioctl: a live install raises ToolMissingError
        args = run_args(tmp_path / "runs", "target=live", f"kubeconfig={info.kubeconfig}", only=("00-prereq-istio",))
        run = meshbook(tmp_path, *args, env=env)
    finally:
        control.down(info.state_dir)
    assert run.notebook("00-prereq-istio")["error"] == "ToolMissingError"
    assert run.code == 2, run.describe()


# -- a timeout: DESIGN and TimeoutParams say exit 4 ---------------------------------------------------------


@pytest.fixture(scope="module")
def timeout_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    home = tmp_path_factory.mktemp("timeout")
    run = meshbook(home, *run_args(home / "runs", "timeouts.pods_ready=0.001", only=UP_TO_SCENARIO_1))
    assert run.run_dir is not None, run.describe()
    return run


@pytest.mark.slow
def test_pods_ready_timeout_names_what_was_awaited(timeout_run: Run) -> None:
    run = timeout_run
    assert run.code != 0, run.describe()
    # The prerequisites' pods are awaited by their installers (timeouts.install), so the first wait on
    # timeouts.pods_ready that can time out is scenario 1's.
    assert run.outcomes() == {"00-prereq-istio": "pass", "01-prereq-bank-vaults": "pass", "10-scenario-1": "fail"}
    reason = run.notebook("10-scenario-1")["reason"]
    assert reason.startswith("10-scenario-1: ")
    assert (
        "timed out after 0.001s waiting for 1 Ready pod with app.kubernetes.io/name=vault,vault_cr=vault in " in reason
    )
    assert isinstance(run.notebook("10-scenario-1")["cell"], int)


@pytest.mark.slow
def test_pods_not_ready_in_time_fail_the_expectation(timeout_run: Run) -> None:
    """Documented in TimeoutParams: pods not Ready in time are the scenario's verdict (exit 1), not exit 4."""
    assert timeout_run.code == 1, timeout_run.describe()
    assert timeout_run.summary["exit_code"] == 1
    assert timeout_run.notebook("10-scenario-1")["error"] == "ExpectationFailed"
