"""The end-of-run leak scan catches a planted secret in any encoding and scrubs it (no cluster needed)."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from meshbook.manifests import DEMO_STARTUP_SECRETS
from meshbook.params import load_params
from meshbook.runbook.finalize import scan_run_directory
from meshbook.runbook.rundir import create_run_directory


def _demo_values() -> list[str]:
    values: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and len(value) >= 4:
            values.append(value)

    walk(DEMO_STARTUP_SECRETS)
    return values


@pytest.mark.parametrize("encoding", ["plain", "base64", "json-in-notebook"])
def test_planted_leak_is_found_and_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoding: str) -> None:
    monkeypatch.delenv("MESHBOOK_KUBECONFIG", raising=False)
    params = load_params(overrides=["target=live", f"kubeconfig={tmp_path / 'missing-kubeconfig'}"])
    run = create_run_directory(tmp_path / "runs")
    secret = max(_demo_values(), key=len)
    planted = {
        "plain": f"the app printed {secret}\n",
        "base64": json.dumps({"data": base64.b64encode(secret.encode()).decode()}),
        "json-in-notebook": json.dumps({"cells": [{"outputs": [{"text": [f"{secret}\n"]}]}]}),
    }[encoding]
    target = run.notebooks / "10-scenario-1.ipynb"
    target.write_text(planted)
    (run.path / "evidence.jsonl").write_text('{"clean": true}\n')
    leaks, _ = scan_run_directory(run, params)
    assert [leak["path"] for leak in leaks] == ["notebooks/10-scenario-1.ipynb"]
    assert leaks[0]["scrubbed"] is True
    assert secret not in json.dumps(leaks)
    text = target.read_text()
    assert secret not in text and base64.b64encode(secret.encode()).decode() not in text
    assert scan_run_directory(run, params)[0] == []
