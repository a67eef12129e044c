"""The panel driven as a person would (toggle, click), with the library calls recorded (no cluster)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pandas as pd
import pytest

from meshbook.errors import MeshbookError
from meshbook.params import RunbookParams
from meshbook.runbook.session import Session
from meshbook.widgets import LiveState, Panel
from meshbook.widgets import ui as panel_module
from meshbook.widgets.podwatch import POD_COLUMNS
from tests.widgets import offline_session, pod, scenario_1_pods


class Library:
    """Stands in for the library calls the panel makes, recording each."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.live = LiveState()
        self.fail_reads = False

    def read_live(self, api: object, params: RunbookParams) -> LiveState:
        self.calls.append(("read_live", params.vault.permissive))
        if self.fail_reads:
            raise MeshbookError("cannot reach the cluster at https://127.0.0.1:9: refused")
        return self.live

    def mtls_table(self, api: object, *, root_namespace: str) -> pd.DataFrame:
        self.calls.append(("mtls_table", root_namespace))
        if self.fail_reads:
            raise MeshbookError("cannot reach the cluster at https://127.0.0.1:9: refused")
        return pd.DataFrame(
            [
                ("vault", "*", None, "PERMISSIVE", "PeerAuthentication vault/default", "namespace", "off"),
                ("default", "*", None, "STRICT", "PeerAuthentication istio-system/default", "mesh", "off"),
            ],
            columns=["namespace", "workload", "port", "mode", "deciding_object", "scope", "sidecar_injection"],
        )


class FakeWatch:
    """PodWatch's interface, recording how it was started and stopped."""

    started: list[FakeWatch] = []  # noqa: RUF012 - a registry shared by the test

    def __init__(
        self, api: object, namespaces: Sequence[str], on_change: Callable[[list[Any]], None], on_error: object
    ) -> None:
        self.namespaces = list(namespaces)
        self.on_change = on_change
        self.running = False

    def start(self) -> FakeWatch:
        self.running = True
        FakeWatch.started.append(self)
        return self

    def stop(self, timeout: float = 10.0) -> bool:
        self.running = False
        return True


@pytest.fixture
def library(monkeypatch: pytest.MonkeyPatch) -> Iterator[Library]:
    fake = Library()
    monkeypatch.setattr(panel_module, "read_live", fake.read_live)
    monkeypatch.setattr(panel_module, "mtls_table", fake.mtls_table)
    monkeypatch.setattr(panel_module, "PodWatch", FakeWatch)
    FakeWatch.started = []
    yield fake
    for open_panel in list(panel_module._ACTIVE.values()):
        open_panel.close()


def record_steps(session: Session, monkeypatch: pytest.MonkeyPatch, *names: str) -> list[str]:
    """Replace Session methods by recorders; the list gets `step:NAME` and `method(args)` entries."""
    calls: list[str] = []
    real_step = session.step

    def step(name: str) -> Session:
        calls.append(f"step:{name}")
        return real_step(name)

    monkeypatch.setattr(session, "step", step)
    for name in names:

        def method(*args: Any, _name: str = name, **kwargs: Any) -> None:
            shown = ", ".join([*(repr(a) for a in args), *(f"{k}={v!r}" for k, v in kwargs.items())])
            calls.append(f"{_name}({shown})")

        monkeypatch.setattr(session, name, method)
    return calls


def test_toggling_vault_permissive_changes_params_and_prediction(library: Library) -> None:
    session = offline_session("20-scenario-2")
    ui = Panel(session)
    assert [w.namespaces for w in FakeWatch.started] == [["istio-system", "vault-system", "vault", "app"]]
    assert ui.prediction["verdict"].tolist() == ["allowed", "allowed", "allowed"]
    assert "refused" not in ui.connections_html.value

    ui.controls["vault_permissive"].value = False

    assert session.params.vault.permissive is False
    assert session.context.params.vault.permissive is False
    verdicts = ui.prediction.set_index("connection")["verdict"]
    assert verdicts["kube-apiserver → vault-system/vault-secrets-webhook:443"] == "allowed"
    assert verdicts["app/app init container init-ubuntu → vault/vault:8200"].startswith("refused: tls:")
    assert '<td class="refused">refused: tls: failed to verify certificate' in ui.connections_html.value
    assert "PeerAuthentication istio-system/default STRICT applies to vault/vault-0:8200" in ui.connections_html.value
    assert "changed vault_permissive" in ui.status.value
    assert "<td>vault PERMISSIVE</td>\n      <td>False</td>" in ui.target_html.value

    ui.controls["vault_permissive"].value = True
    assert ui.prediction["verdict"].tolist() == ["allowed", "allowed", "allowed"]


def test_other_toggles_reach_the_params(library: Library) -> None:
    session = offline_session("10-scenario-1")
    ui = Panel(session, watch=False)
    ui.controls["sidecar_mode"].value = "native"
    ui.controls["failure_policy"].value = "Fail"
    ui.controls["webhook_permissive"].value = False
    ui.controls["istio_enabled"].value = False
    p = session.params
    assert (str(p.istio.sidecar_mode), str(p.bank_vaults.pods_failure_policy)) == ("native", "Fail")
    assert (p.bank_vaults.webhook_permissive, p.vault.istio_enabled) == (False, False)
    webhook = ui.prediction.iloc[0]
    assert webhook["verdict"].startswith("refused")
    assert webhook["consequence"].startswith("failurePolicy Fail")


def test_clicking_a_step_runs_the_session_call_and_refreshes(library: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    session = offline_session("10-scenario-1")
    calls = record_steps(session, monkeypatch, "namespace", "apply", "allow_vault")
    ui = Panel(session, watch=False)
    assert ui.step_names == ["namespace vault", "Vault", "vault PERMISSIVE", "namespace app", "app"]
    library.calls.clear()

    ui.step_buttons["Vault"].click()

    assert calls == ["step:Vault", "apply('rbac', 'vault-cr')"]
    assert library.calls == [("read_live", True), ("mtls_table", "istio-system")]
    assert ui.status.value == "Vault: done"
    assert not ui.step_buttons["Vault"].disabled


def test_run_all_runs_every_step_in_notebook_order(library: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    session = offline_session("10-scenario-1")
    calls = record_steps(session, monkeypatch, "namespace", "apply", "allow_vault")
    ui = Panel(session, watch=False)
    ui.controls["vault_permissive"].value = False  # steps read the toggled parameters

    ui.run_all_button.click()

    assert calls == [
        "step:namespace vault",
        "namespace('vault', inject=False)",
        "step:Vault",
        "apply('rbac', 'vault-cr')",
        "step:vault PERMISSIVE",
        "allow_vault()",
        "step:namespace app",
        "namespace('app', inject=True)",
        "step:app",
        "apply('app')",
    ]
    assert ("read_live", False) in library.calls


def test_a_failing_step_is_shown_and_stops_run_all(library: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    session = offline_session("20-scenario-2")
    calls = record_steps(session, monkeypatch, "auto_inject")

    def recreate(namespace: str) -> None:
        calls.append(f"recreate_pods({namespace!r})")
        raise MeshbookError(f"timed out waiting for pods in namespace {namespace}")

    monkeypatch.setattr(session, "recreate_pods", recreate)
    ui = Panel(session, watch=False)
    assert ui.run_all() is False
    assert calls == [
        "step:injection",
        "auto_inject('app', False)",
        "auto_inject('vault', True)",
        "step:recreate Vault",
        "recreate_pods('vault')",
    ]
    assert ui.status.value == "recreate Vault failed: MeshbookError: timed out waiting for pods in namespace vault"
    assert not ui.run_all_button.disabled


def test_registered_steps_get_buttons(library: Library) -> None:
    ran: list[str] = []
    ui = Panel(offline_session("00-prereq-istio"), watch=False)
    assert ui.step_names == ["install Istio", "require mTLS"]
    assert ui.steps({"say hello": lambda: ran.append("hello")}) is ui
    assert ui.step_names == ["install Istio", "require mTLS", "say hello"]
    ui.step_buttons["say hello"].click()
    assert ran == ["hello"]
    ui.steps({"only": lambda: ran.append("only")}, replace=True)
    assert list(ui.step_buttons) == ["only"]
    assert [b.description for b in ui.steps_box.children] == ["only", "Run all steps", "Refresh"]


def test_step_records_are_shown_under_the_tables(library: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    session = offline_session("10-scenario-1")
    shown: list[pd.DataFrame] = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))

    def allow_vault() -> None:
        session.record("mesh_policy", "vault/default", outcome="info", reason="applied")

    monkeypatch.setattr(session, "allow_vault", allow_vault)
    ui = Panel(session, watch=False)
    assert ui.run_step("vault PERMISSIVE")
    assert shown[0].to_dict("records") == [
        {
            "step": "vault PERMISSIVE",
            "kind": "mesh_policy",
            "subject": "vault/default",
            "outcome": "info",
            "reason": "applied",
        }
    ]


def test_pod_table_shows_what_the_watch_delivers(library: Library) -> None:
    ui = Panel(offline_session("10-scenario-1"))
    (watch,) = FakeWatch.started
    assert "no pods yet" in ui.pods_html.value

    watch.on_change(scenario_1_pods())

    assert list(ui.pod_frame.columns) == list(POD_COLUMNS)
    rows = ui.pod_frame.set_index("pod")
    assert rows.loc["vault-0", ["ready", "status", "sidecar", "restarts"]].tolist() == ["3/3", "Running", "-", 0]
    assert rows.loc["app-5d8f7-x2x2x", ["ready", "sidecar"]].tolist() == ["2/2", "classic"]
    assert '<table class="dataframe meshbook-pods">' in ui.pods_html.value
    assert "<td>vault-0</td>\n      <td>3/3</td>" in ui.pods_html.value
    assert ui.pod_updates == 1

    restarted = pod("app", "app-5d8f7-x2x2x", ["app", "istio-proxy"], ready=False, restarts=2)
    watch.on_change([restarted])
    assert ui.pod_frame[["pod", "ready", "status", "restarts"]].values.tolist() == [
        ["app-5d8f7-x2x2x", "0/2", "ContainerCreating", 4]  # kubectl sums both containers
    ]
    assert ui.wait_for_pods(lambda f: len(f) == 1, timeout=1).equals(ui.pod_frame)


def test_mtls_table_keeps_the_runbooks_namespaces(library: Library) -> None:
    ui = Panel(offline_session("10-scenario-1"), watch=False)
    assert ui.mtls_frame["namespace"].tolist() == ["vault"]
    assert "PeerAuthentication vault/default" in ui.mtls_html.value


def test_an_unreachable_cluster_is_shown_not_raised(library: Library) -> None:
    library.fail_reads = True
    ui = Panel(offline_session("10-scenario-1"), watch=False)
    assert ui.status.value == "cannot read the cluster: cannot reach the cluster at https://127.0.0.1:9: refused"
    assert ui.mtls_html.value == (
        '<table class="meshbook-mtls"><tr><td>no mTLS posture: cannot reach the cluster at https://127.0.0.1:9: '
        "refused</td></tr></table>"
    )
    assert len(ui.prediction) == 3  # still predicted, from what the runbooks apply


def test_a_new_panel_for_the_same_notebook_stops_the_old_one(library: Library) -> None:
    first = Panel(offline_session("10-scenario-1"))
    second = Panel(offline_session("10-scenario-1"))
    assert [w.running for w in FakeWatch.started] == [False, True]
    assert panel_module._ACTIVE["10-scenario-1"] is second
    other = Panel(offline_session("20-scenario-2"))
    assert FakeWatch.started[1].running and FakeWatch.started[2].running
    second.close()
    assert not FakeWatch.started[1].running
    assert "10-scenario-1" not in panel_module._ACTIVE
    del first, other


def test_panel_is_a_widget_in_a_notebook(library: Library) -> None:
    ui = Panel(offline_session("10-scenario-1"), watch=False)
    bundle = ui._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "meshbook-panel" in ui.widget._dom_classes
