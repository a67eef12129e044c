"""The audit notebook's last cell: an error finding fails the cell with its message, not a stack of frames."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from IPython.core.interactiveshell import InteractiveShell

from meshbook.audit import notebook
from meshbook.audit.findings import Audit, Finding

BROKEN = Finding("MB0101", "MutatingWebhookConfiguration vault-secrets-webhook", "the API server cannot reach it")


@pytest.fixture
def shell() -> Iterator[InteractiveShell]:
    ip = InteractiveShell.instance()
    ip.run_line_magic("colors", "nocolor")
    ip.InteractiveTB.set_mode("Context")
    ip.user_ns.update(
        notebook=notebook, Audit=Audit, BROKEN=BROKEN, rb=SimpleNamespace(context=SimpleNamespace(notebook="40-audit"))
    )
    try:
        yield ip
    finally:
        InteractiveShell.clear_instance()


def run(ip: InteractiveShell, code: str) -> tuple[str, object]:
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown), contextlib.redirect_stderr(shown):
        result = ip.run_cell(code)
    return shown.getvalue(), result.error_in_exec


def test_an_error_finding_fails_the_cell_showing_only_its_message_then_tracebacks_are_full_again(
    shell: InteractiveShell,
) -> None:
    shown, error = run(shell, 'notebook.finish(rb, Audit("https://cluster", [BROKEN]))')
    assert type(error).__name__ == "ExpectationFailed"
    assert "40-audit: 1 error finding(s) (MB0101)" in shown
    assert "notebook.py" not in shown and "raise ExpectationFailed" not in shown  # no frames
    assert shell.InteractiveTB.mode == "Context"
    shown, error = run(shell, "def broken():\n    raise KeyError('bug')\nbroken()")
    assert isinstance(error, KeyError) and "broken()" in shown  # a bug still shows where it happened


def test_no_error_finding_raises_nothing_and_leaves_the_shell_alone(shell: InteractiveShell) -> None:
    shown, error = run(shell, 'notebook.finish(rb, Audit("https://cluster"))')
    assert error is None and "No findings" in shown
    assert shell.InteractiveTB.mode == "Context" and not shell.events.callbacks["post_run_cell"]
