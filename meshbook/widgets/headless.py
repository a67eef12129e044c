"""When the panel is live and when it stays inert (a headless run must not start threads or widgets).

The rule, first match wins:

1. `MESHBOOK_PANEL=on` (or 1/true/yes) forces the panel live; `MESHBOOK_PANEL=off` (or 0/false/no) turns
   it off.
2. `MESHBOOK_RUN_DIR` is set: `meshbook run` sets it for every kernel it starts, so the panel is inert.
3. No IPython kernel (plain Python, terminal IPython): nothing could show a widget.
4. papermill's own marker: `PAPERMILL_INPUT_PATH` / `PAPERMILL_OUTPUT_PATH` in the notebook's namespace
   (papermill `--inject-paths`).
5. The cell came from a client that cannot take input (the execute request's `allow_stdin` is false):
   nbclient, which papermill and `jupyter nbconvert --execute` drive, always says so; JupyterLab,
   Notebook and VS Code do not. (Voila says so too: use `MESHBOOK_PANEL=on` there.)

Otherwise the panel is live.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from meshbook.runbook.environment import ENV_RUN_DIR

ENV_PANEL = "MESHBOOK_PANEL"
PAPERMILL_MARKERS = ("PAPERMILL_INPUT_PATH", "PAPERMILL_OUTPUT_PATH")
_ON = ("on", "1", "true", "yes")
_OFF = ("off", "0", "false", "no")


def ipython_shell() -> Any:
    """The running IPython shell (a kernel's, in Jupyter), or None."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - ipykernel depends on IPython
        return None
    return get_ipython()


def headless_reason(namespace: Mapping[str, Any] | None = None) -> str | None:
    """Why the panel stays inert in this process, or None when it should be live (rule in the module doc)."""
    forced = os.environ.get(ENV_PANEL, "").strip().lower()
    if forced in _ON:
        return None
    if forced in _OFF:
        return f"{ENV_PANEL}={os.environ[ENV_PANEL]} turns the panel off"
    if os.environ.get(ENV_RUN_DIR):
        return f"headless run: {ENV_RUN_DIR} is set by `meshbook run`"
    shell = ipython_shell()
    kernel = getattr(shell, "kernel", None)
    if shell is None or kernel is None:
        return "not running in a Jupyter kernel: no front end can show widgets"
    user_ns: Mapping[str, Any] = namespace if namespace is not None else getattr(shell, "user_ns", {})
    marker = next((name for name in PAPERMILL_MARKERS if name in user_ns), None)
    if marker is not None:
        return f"papermill run: {marker} is defined"
    if getattr(kernel, "_allow_stdin", True) is False:
        return "executed by a client that takes no input (papermill, nbclient or nbconvert --execute)"
    return None
