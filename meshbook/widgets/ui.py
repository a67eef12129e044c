"""The ipywidgets panel: target, toggles, step buttons, live pods, predicted connections, mTLS posture.

The widgets hold no logic: toggles become parameters (`Toggles.apply_to`) on the notebook's own Session,
buttons call the Session's steps (`default_steps`: the calls the notebook's cells make), the pod table is
`pods_frame` over a watch, the connection view is `predict` (the pure connectivity model) and the mTLS
table is `meshbook.mesh.mtls.mtls_table`: the library a headless run calls.
"""

from __future__ import annotations

import contextlib
import html
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets as w
import pandas as pd

from meshbook.mesh.mtls import mtls_table
from meshbook.params import FailurePolicy, RunbookName, SidecarMode
from meshbook.runbook.session import Session
from meshbook.widgets.podwatch import PodWatch, pods_frame
from meshbook.widgets.predict import COLUMNS as PREDICTION_COLUMNS
from meshbook.widgets.predict import LiveState, predict, prediction_frame, read_live
from meshbook.widgets.steps import Step, default_steps
from meshbook.widgets.toggles import Toggles

_STYLE = """<style>
.meshbook-panel table { border-collapse: collapse; font-size: 12px; margin: 2px 0 8px 0; }
.meshbook-panel th, .meshbook-panel td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; }
.meshbook-panel th { background: #f0f0f0; }
.meshbook-panel td.refused { color: #b00020; font-weight: bold; }
.meshbook-panel td.allowed { color: #1b5e20; font-weight: bold; }
</style>"""

_ACTIVE: dict[str, Panel] = {}
"""The live panel of each notebook: showing a new one stops the old one's watch."""


def _table(frame: pd.DataFrame, css: str, empty: str) -> str:
    if frame.empty:
        return f'<table class="{css}"><tr><td>{html.escape(empty)}</td></tr></table>'
    return frame.to_html(index=False, classes=css, border=0, escape=True)


def _verdict_table(frame: pd.DataFrame) -> str:
    text = _table(frame, "meshbook-connections", "no connections")
    return text.replace("<td>allowed</td>", '<td class="allowed">allowed</td>').replace(
        "<td>refused:", '<td class="refused">refused:'
    )


def _register_cell_hook(callback: Callable[[object], None]) -> bool:
    """Call `callback` after every cell the kernel runs (IPython's post_run_cell); False outside IPython."""
    from meshbook.widgets.headless import ipython_shell

    shell = ipython_shell()
    if shell is None:
        return False
    shell.events.register("post_run_cell", callback)
    return True


def _unregister_cell_hook(callback: Callable[[object], None]) -> None:
    from meshbook.widgets.headless import ipython_shell

    shell = ipython_shell()
    if shell is not None:
        with contextlib.suppress(ValueError):
            shell.events.unregister("post_run_cell", callback)


class InertPanel:
    """What `panel()` returns where no one can interact (a headless run): no widgets, no threads, one line."""

    active = False

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def steps(self, steps: Mapping[str, Step], *, replace: bool = False) -> InertPanel:
        return self

    def close(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"meshbook panel: off ({self.reason})"


class Panel:
    """The interactive panel of one runbook Session (`panel(rb)` shows it at the top of a notebook)."""

    active = True

    def __init__(self, session: Session, *, steps: Mapping[str, Step] | None = None, watch: bool = True) -> None:
        self.session = session
        self.notebook = RunbookName(session.context.notebook)
        self.live = LiveState()
        self.pod_frame = pods_frame([])
        self.prediction = pd.DataFrame(columns=list(PREDICTION_COLUMNS))
        self.mtls_frame = pd.DataFrame()
        self.watch: PodWatch | None = None
        self.pod_updates = 0
        self._pods_changed = threading.Condition()
        self._steps: dict[str, Step] = dict(steps) if steps is not None else default_steps(session)
        p = session.params
        self.namespaces = list(
            dict.fromkeys([p.istio.namespace, p.bank_vaults.namespace, p.vault.namespace, p.app.namespace])
        )
        self._build()
        self.refresh()
        if watch:
            self.start_watch()
        self._hooked = _register_cell_hook(self._after_cell)
        previous = _ACTIVE.get(self.notebook)
        if previous is not None and previous is not self:
            previous.close()
        _ACTIVE[self.notebook] = self

    # -- widgets ----------------------------------------------------------------------------------------

    def _build(self) -> None:
        t = Toggles.of(self.session.params)
        style = {"description_width": "initial"}
        modes, policies = [m.value for m in SidecarMode], [p.value for p in FailurePolicy]
        self.controls: dict[str, Any] = {
            "sidecar_mode": w.Dropdown(
                options=modes, value=t.sidecar_mode.value, description="sidecar mode", style=style
            ),
            "webhook_permissive": w.Checkbox(value=t.webhook_permissive, description="webhook PERMISSIVE", style=style),
            "vault_permissive": w.Checkbox(value=t.vault_permissive, description="vault PERMISSIVE", style=style),
            "failure_policy": w.Dropdown(
                options=policies, value=t.failure_policy.value, description="failure policy", style=style
            ),
            "istio_enabled": w.Checkbox(value=t.istio_enabled, description="istioEnabled", style=style),
        }
        for control in self.controls.values():
            control.layout = w.Layout(width="auto")
            control.observe(self._on_toggle, names="value")
        self.run_all_button = w.Button(description="Run all steps", button_style="primary", icon="forward")
        self.run_all_button.on_click(lambda _: self.run_all())
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.steps_box = w.HBox(layout=w.Layout(flex_flow="row wrap"))
        self.step_buttons: dict[str, Any] = {}
        self._build_step_buttons()
        self.header = w.HTML()
        self.target_html = w.HTML()
        self.status = w.HTML(value="ready")
        self.pods_html = w.HTML(value=_table(self.pod_frame, "meshbook-pods", "no pods yet"))
        self.connections_html = w.HTML()
        self.mtls_html = w.HTML()
        self.output = w.Output()
        self.header.value = (
            f"{_STYLE}<b>meshbook panel</b>: {html.escape(str(self.notebook))} "
            "(toggles change this session's parameters; the connection view predicts with them)"
        )
        self.widget = w.VBox(
            [
                self.header,
                self.target_html,
                w.HBox(list(self.controls.values()), layout=w.Layout(flex_flow="row wrap")),
                self.steps_box,
                self.status,
                w.HTML("<b>Pods</b> (live, from a watch)"),
                self.pods_html,
                w.HTML("<b>Connections</b> (prediction: the connectivity model after this runbook's steps)"),
                self.connections_html,
                w.HTML("<b>mTLS posture</b>"),
                self.mtls_html,
                self.output,
            ]
        )
        self.widget.add_class("meshbook-panel")
        self._show_target()

    def _build_step_buttons(self) -> None:
        self.step_buttons = {}
        for name in self._steps:
            button = w.Button(description=name, tooltip=f"run step {name!r}")
            button.on_click(lambda _b, step=name: self.run_step(step))
            self.step_buttons[name] = button
        self.steps_box.children = [*self.step_buttons.values(), self.run_all_button, self.refresh_button]

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    # -- what the widgets show ----------------------------------------------------------------------------

    @property
    def toggles(self) -> Toggles:
        """The toggles as the controls show them."""
        c = self.controls
        return Toggles(
            sidecar_mode=SidecarMode(c["sidecar_mode"].value),
            webhook_permissive=bool(c["webhook_permissive"].value),
            vault_permissive=bool(c["vault_permissive"].value),
            failure_policy=FailurePolicy(c["failure_policy"].value),
            istio_enabled=bool(c["istio_enabled"].value),
        )

    def _show_target(self) -> None:
        import os

        from meshbook.runbook.environment import ENV_KUBECONFIG

        overview = self.session.overview()
        source = os.environ.get(ENV_KUBECONFIG) or self.session.params.kubeconfig or "the default sandbox"
        overview.loc["kubeconfig"] = str(source)
        overview.loc["kube context"] = str(self.session.params.kube_context or "(current)")
        self.target_html.value = overview.reset_index().to_html(index=False, classes="meshbook-target", border=0)

    def _on_toggle(self, change: Mapping[str, Any]) -> None:
        before = Toggles.of(self.session.params)
        after = self.toggles
        params = after.apply_to(self.session.params)
        self.session.params = params
        self.session.context.params = params
        self._show_target()
        self.update_prediction()
        changed = ", ".join(before.changed(after)) or "nothing"
        self.status.value = html.escape(f"changed {changed}: the prediction is updated; steps run with it")

    def update_prediction(self) -> pd.DataFrame:
        """Recompute the connection view from the toggles and the last live state."""
        self.prediction = prediction_frame(predict(self.notebook, self.session.params, self.live))
        self.connections_html.value = _verdict_table(self.prediction)
        return self.prediction

    def show_pods(self, pods: Sequence[Mapping[str, Any]]) -> None:
        """Show these pods (API JSON dicts) in the pod table; the watch calls it after every event."""
        frame = pods_frame(pods)
        self.pod_frame = frame
        self.pods_html.value = _table(frame, "meshbook-pods", "no pods yet")
        with self._pods_changed:
            self.pod_updates += 1
            self._pods_changed.notify_all()

    def wait_for_pods(self, predicate: Callable[[pd.DataFrame], bool], timeout: float = 60.0) -> pd.DataFrame:
        """Block until the pod table satisfies `predicate` (woken by the watch); TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._pods_changed:
            while not predicate(self.pod_frame):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.watch is not None and not self.watch.running):
                    raise TimeoutError(f"pod table did not reach the condition; last:\n{self.pod_frame}")
                self._pods_changed.wait(remaining)
            return self.pod_frame

    def refresh(self) -> None:
        """Read the live objects again, then redraw the prediction and the mTLS table.

        Problems are shown, not raised into the front end: an unreachable cluster in the status line,
        a cluster without Istio's PeerAuthentication (before 00-prereq-istio) in place of the mTLS table.
        """
        api = self.session.context.api
        try:
            self.live = read_live(api, self.session.params)
        except Exception as exc:
            self.status.value = html.escape(f"cannot read the cluster: {exc}")
        note = "no workloads"
        try:
            table = mtls_table(api, root_namespace=self.session.params.istio.namespace)
            self.mtls_frame = table[table["namespace"].isin(self.namespaces)].reset_index(drop=True)
        except Exception as exc:
            self.mtls_frame, note = pd.DataFrame(), f"no mTLS posture: {exc}"
        self.mtls_html.value = _table(self.mtls_frame, "meshbook-mtls", note)
        self.update_prediction()

    # -- watch ------------------------------------------------------------------------------------------

    def start_watch(self) -> None:
        if self.watch is not None and self.watch.running:
            return
        self.watch = PodWatch(self.session.context.api, self.namespaces, self.show_pods, self._watch_failed).start()

    def _watch_failed(self, message: str) -> None:
        self.status.value = html.escape(message)
        with self._pods_changed:
            self._pods_changed.notify_all()

    def _after_cell(self, result: object = None) -> None:
        """After each notebook cell: what the cell changed shows in the prediction and the mTLS table."""
        self.refresh()

    def close(self) -> None:
        """Stop the pod watch, leave the notebook's cell events and close the widgets."""
        if self.watch is not None:
            self.watch.stop()
        if self._hooked:
            _unregister_cell_hook(self._after_cell)
            self._hooked = False
        self.widget.close()
        if _ACTIVE.get(self.notebook) is self:
            del _ACTIVE[self.notebook]

    # -- steps ------------------------------------------------------------------------------------------

    def steps(self, steps: Mapping[str, Step], *, replace: bool = False) -> Panel:
        """Register named steps (added to, or with `replace` instead of, the runbook's own); returns the panel."""
        self._steps = dict(steps) if replace else {**self._steps, **steps}
        self._build_step_buttons()
        return self

    @property
    def step_names(self) -> list[str]:
        return list(self._steps)

    def _busy(self, busy: bool) -> None:
        for button in (*self.step_buttons.values(), self.run_all_button, self.refresh_button):
            button.disabled = busy

    def run_step(self, name: str) -> bool:
        """Run one step; its new evidence records appear below the tables. False (and why) if it raised."""
        from IPython.display import display

        step = self._steps[name]
        records = self.session.context.records
        before = len(records)
        self._busy(True)
        self.status.value = html.escape(f"running {name} ...")
        try:
            with self.output:
                step()
                done = [
                    {k: r.get(k) for k in ("step", "kind", "subject", "outcome", "reason")} for r in records[before:]
                ]
                if done:
                    display(pd.DataFrame(done))  # type: ignore[no-untyped-call]
        except Exception as exc:  # shown in the panel: a failing step must not kill the front end's callback
            self.status.value = html.escape(f"{name} failed: {type(exc).__name__}: {exc}")
            return False
        finally:
            self._busy(False)
            self.refresh()
        self.status.value = html.escape(f"{name}: done")
        return True

    def run_all(self) -> bool:
        """Run every step in order; stops at the first that fails."""
        return all(self.run_step(name) for name in list(self._steps))


def panel(session: Session, *, steps: Mapping[str, Step] | None = None, watch: bool = True) -> Panel | InertPanel:
    """The runbook's interactive panel, or an inert one in a headless run (rule: `meshbook.widgets.headless`)."""
    from meshbook.widgets.headless import headless_reason

    reason = headless_reason()
    if reason is not None:
        return InertPanel(reason)
    return Panel(session, steps=steps, watch=watch)
