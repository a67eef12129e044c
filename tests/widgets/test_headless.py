"""When the panel is inert: the rule in meshbook.widgets.headless, case by case (fake kernels, no Jupyter)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from meshbook.widgets import InertPanel, headless, panel
from meshbook.widgets import ui as panel_module
from tests.widgets import offline_session


def fake_shell(allow_stdin: bool = True, **user_ns: Any) -> SimpleNamespace:
    return SimpleNamespace(kernel=SimpleNamespace(_allow_stdin=allow_stdin), user_ns=dict(user_ns))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MESHBOOK_PANEL", "MESHBOOK_RUN_DIR"):
        monkeypatch.delenv(name, raising=False)


def test_live_in_a_jupyterlab_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(headless, "ipython_shell", lambda: fake_shell())
    assert headless.headless_reason() is None


def test_meshbook_run_makes_it_inert(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(headless, "ipython_shell", lambda: fake_shell())
    monkeypatch.setenv("MESHBOOK_RUN_DIR", "/tmp/runs/x")
    assert headless.headless_reason() == "headless run: MESHBOOK_RUN_DIR is set by `meshbook run`"


def test_papermill_marker_makes_it_inert(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(headless, "ipython_shell", lambda: fake_shell(PAPERMILL_OUTPUT_PATH="out.ipynb"))
    assert headless.headless_reason() == "papermill run: PAPERMILL_OUTPUT_PATH is defined"


def test_a_client_without_input_makes_it_inert(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(headless, "ipython_shell", lambda: fake_shell(allow_stdin=False))
    assert headless.headless_reason() == (
        "executed by a client that takes no input (papermill, nbclient or nbconvert --execute)"
    )


def test_no_kernel_makes_it_inert() -> None:
    assert headless.headless_reason() == "not running in a Jupyter kernel: no front end can show widgets"


@pytest.mark.parametrize("value", ["on", "1", "TRUE"])
def test_forced_on_wins(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("MESHBOOK_PANEL", value)
    monkeypatch.setenv("MESHBOOK_RUN_DIR", "/tmp/runs/x")
    assert headless.headless_reason() is None


def test_forced_off_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(headless, "ipython_shell", lambda: fake_shell())
    monkeypatch.setenv("MESHBOOK_PANEL", "off")
    assert headless.headless_reason() == "MESHBOOK_PANEL=off turns the panel off"


def test_inert_panel_builds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Headless, `panel(rb)` starts no watch, reads nothing and shows one line."""

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("an inert panel must not touch the cluster or start threads")

    monkeypatch.setattr(panel_module, "Panel", forbidden)
    monkeypatch.setattr(panel_module, "PodWatch", forbidden)
    monkeypatch.setattr(panel_module, "read_live", forbidden)
    monkeypatch.setenv("MESHBOOK_RUN_DIR", "/tmp/runs/x")
    shown = panel(offline_session("10-scenario-1"))
    assert isinstance(shown, InertPanel) and not shown.active
    assert repr(shown) == "meshbook panel: off (headless run: MESHBOOK_RUN_DIR is set by `meshbook run`)"
    assert shown.steps({"x": lambda: None}) is shown
    shown.close()
