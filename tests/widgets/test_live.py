"""The panel on a real sandbox: the pod table follows a watch, the live reads work, closing ends the thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from kubernetes import client

from meshbook import runbook
from meshbook.params import SandboxSpeed
from meshbook.sandbox import control
from meshbook.widgets import Panel

pytestmark = pytest.mark.slow


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[control.SandboxInfo]:
    info, _ = control.up(tmp_path / "sandbox", SandboxSpeed.INSTANT)
    monkeypatch.setenv("MESHBOOK_KUBECONFIG", str(info.kubeconfig))
    monkeypatch.delenv("MESHBOOK_RUN_DIR", raising=False)
    try:
        yield info
    finally:
        control.down(info.state_dir)


def _pod(name: str) -> dict[str, object]:
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "alpine:3.22", "command": ["sh", "-c", "sleep 3600"]}]},
    }


def _has(name: str, ready: str) -> Callable[[pd.DataFrame], bool]:
    def check(frame: pd.DataFrame) -> bool:
        return bool(((frame["pod"] == name) & (frame["ready"] == ready)).any())

    return check


def test_pod_table_follows_the_watch(sandbox: control.SandboxInfo) -> None:
    rb = runbook.start("10-scenario-1", {})
    core = client.CoreV1Api(rb.context.api)
    core.create_namespace({"metadata": {"name": "app"}})
    ui = Panel(rb)
    try:
        assert ui.status.value == "ready"  # the live reads (namespaces, policies, pods) worked
        assert "no mTLS posture: the cluster does not serve PeerAuthentication" in ui.mtls_html.value  # no Istio yet
        assert ui.prediction["verdict"].tolist() == ["allowed", "allowed", "allowed"]
        assert ui.watch is not None and ui.watch.running
        core.create_namespaced_pod("app", _pod("watched"))
        core.create_namespaced_pod("default", _pod("elsewhere"))  # not one of the runbook's namespaces
        frame = ui.wait_for_pods(_has("watched", "1/1"), timeout=60)
        assert frame.loc[frame.pod == "watched", ["namespace", "status", "sidecar"]].values.tolist() == [
            ["app", "Running", "-"]
        ]
        core.delete_namespaced_pod("watched", "app", grace_period_seconds=0)
        frame = ui.wait_for_pods(lambda f: "watched" not in set(f["pod"]), timeout=60)
        assert "elsewhere" not in set(frame["pod"])
        watch = ui.watch
    finally:
        ui.close()
    assert not watch.running  # the thread ended at once: its watch response was shut down
    assert watch.error is None
