"""manifest.json: hashes of every artifact, and `meshbook verify` finding modified, missing and added files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from meshbook.evidence.manifest import MANIFEST_SCHEMA, verify_manifest, write_manifest
from meshbook.report import build_reports
from tests.conftest import CliResult
from tests.report.test_synthetic import NOTEBOOKS, RUN_FAIL, failing_run

__all__ = ["failing_run", "sealed_run"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _seal(run: Path) -> Path:
    build_reports([run])
    return write_manifest(
        run,
        params={"target": "sandbox", "vault": {"permissive": False}},
        cluster={"server": "https://127.0.0.1:6443", "context": "sandbox", "uid": "c0ffee"},
        versions={"meshbook": "0.1.0", "istio": "1.30.0", "vault-operator": "1.24.0"},
        started_at="2025-01-02T00:00:00Z",
        ended_at="2025-01-02T00:01:00Z",
        outcome="fail",
        leaks=[{"path": "notebooks/x.ipynb", "label": "value#1", "encoding": "base64", "count": 1}],
    )


@pytest.fixture
def sealed_run(failing_run: Path) -> Path:
    (failing_run / "RUNNING").write_text("{}\n")  # transient: the run removes it after the manifest
    _seal(failing_run)
    return failing_run


def test_manifest_content(sealed_run: Path) -> None:
    manifest = json.loads((sealed_run / "manifest.json").read_text())
    assert list(manifest) == [
        "schema", "run_id", "started_at", "ended_at", "outcome", "params", "cluster", "versions", "leaks", "files",
    ]  # fmt: skip
    assert (manifest["schema"], manifest["run_id"], manifest["outcome"]) == (MANIFEST_SCHEMA, RUN_FAIL, "fail")
    assert (manifest["started_at"], manifest["ended_at"]) == ("2025-01-02T00:00:00Z", "2025-01-02T00:01:00Z")
    assert manifest["cluster"] == {"server": "https://127.0.0.1:6443", "context": "sandbox", "uid": "c0ffee"}
    assert manifest["versions"]["istio"] == "1.30.0"
    assert manifest["leaks"] == [{"path": "notebooks/x.ipynb", "label": "value#1", "encoding": "base64", "count": 1}]
    names = ["evidence.jsonl", "junit.xml", *[f"notebooks/{n}.ipynb" for n in NOTEBOOKS]]
    names += ["report.html", "report.md", "summary.json"]
    assert list(manifest["files"]) == names
    for name in names:
        path = sealed_run / name
        assert manifest["files"][name] == {"sha256": _sha(path), "size": path.stat().st_size}


def test_intact_run_verifies_and_rebuilt_reports_keep_it_intact(
    sealed_run: Path, run_cli: Callable[..., CliResult]
) -> None:
    assert verify_manifest(sealed_run) == []
    (sealed_run / "RUNNING").unlink()
    build_reports([sealed_run])  # reports depend only on the run directory: same bytes
    assert verify_manifest(sealed_run) == []
    result = run_cli("verify", str(sealed_run))
    assert (result.code, result.out, result.err) == (
        0,
        f"{sealed_run}: intact (every file matches manifest.json)\n",
        "",
    )


def test_one_changed_byte_is_reported(sealed_run: Path, run_cli: Callable[..., CliResult]) -> None:
    evidence = sealed_run / "evidence.jsonl"
    before = _sha(evidence)
    data = bytearray(evidence.read_bytes())
    data[100] ^= 0x01
    evidence.write_bytes(bytes(data))
    expected = f"modified: evidence.jsonl (sha256 was {before[:12]}…, now {_sha(evidence)[:12]}…)"
    assert verify_manifest(sealed_run) == [expected]
    result = run_cli("verify", str(sealed_run))
    assert (result.code, result.out) == (1, expected + "\n")
    assert result.err == f"meshbook: {sealed_run}: 1 difference(s) from manifest.json\n"


def test_missing_and_added_files(sealed_run: Path, run_cli: Callable[..., CliResult]) -> None:
    (sealed_run / "notebooks" / "10-scenario-1.ipynb").unlink()
    (sealed_run / "notebooks" / "extra.ipynb").write_text("{}")
    (sealed_run / "zz-added.txt").write_text("x")
    (sealed_run / "latest-link").symlink_to("report.md")
    expected = [
        "added: latest-link",
        "missing: notebooks/10-scenario-1.ipynb",
        "added: notebooks/extra.ipynb",
        "added: zz-added.txt",
    ]
    assert verify_manifest(sealed_run) == expected
    result = run_cli("verify", str(sealed_run))
    assert (result.code, result.out.splitlines()) == (1, expected)


def test_symlinks_are_recorded_by_target(failing_run: Path) -> None:
    (failing_run / "link").symlink_to("summary.json")
    _seal(failing_run)
    manifest = json.loads((failing_run / "manifest.json").read_text())
    assert manifest["files"]["link"] == {
        "symlink": "summary.json",
        "sha256": hashlib.sha256(b"summary.json").hexdigest(),
    }
    (failing_run / "link").unlink()
    (failing_run / "link").symlink_to("report.md")
    assert verify_manifest(failing_run) == [
        f"modified: link (sha256 was {hashlib.sha256(b'summary.json').hexdigest()[:12]}…, "
        f"now {hashlib.sha256(b'report.md').hexdigest()[:12]}…)"
    ]


def test_missing_or_foreign_manifest(failing_run: Path, run_cli: Callable[..., CliResult]) -> None:
    problems = verify_manifest(failing_run)
    assert problems == [
        f"manifest: {failing_run / 'manifest.json'}: missing (the run did not finish, or its manifest was removed)"
    ]
    result = run_cli("verify", str(failing_run))
    assert (result.code, result.out) == (1, problems[0] + "\n")
    (failing_run / "manifest.json").write_text('{"files": {}}')
    assert verify_manifest(failing_run) == [
        f"manifest: {failing_run / 'manifest.json'}: not a {MANIFEST_SCHEMA} manifest"
    ]
    result = run_cli("verify", str(failing_run / "nope"))
    assert (result.code, result.err) == (2, f"meshbook: {failing_run / 'nope'}: not a run directory\n")


def test_manifest_states_the_leak_scans_scope(failing_run: Path) -> None:
    scope = {"classes": {"Vault root token": 1, "TLS private key": 4}, "encodings": ["plain", "hex"], "files": 9}
    build_reports([failing_run])
    path = write_manifest(
        failing_run, params={}, cluster={}, versions={}, started_at="", ended_at="", outcome="pass", leaks=[],
        leak_scan=scope,
    )  # fmt: skip
    manifest = json.loads(path.read_text())
    assert list(manifest)[-3:] == ["leaks", "leak_scan", "files"]
    assert manifest["leak_scan"] == scope
