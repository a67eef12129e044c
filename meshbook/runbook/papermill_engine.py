"""papermill's nbclient engine, saving the executed notebook once between two cells instead of twice.

papermill writes the whole notebook when a cell completes and again when the next one starts, microseconds
later: two serialisations and renames (about 3 ms each on a quiet machine, far more on a busy one) between
every two cells, while the next cell waits. Here a cell's completion is written with the next cell's start
(or the notebook's end, which papermill reaches on every path: an error, a timeout, an interrupt), so the
file on disk still shows every finished cell with its outputs and the running one marked `running`; only
the instant between the two states is never on disk.
"""

from __future__ import annotations

from typing import Any

from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines

ENGINE_NAME = "meshbook"


class SaveBetweenCells(NotebookExecutionManager):  # type: ignore[misc]
    """papermill's execution manager whose save at a cell's completion waits for the next save."""

    _held = False

    def save(self, **kwargs: Any) -> None:
        if not self._held:
            super().save(**kwargs)

    def cell_complete(self, cell: Any, cell_index: int | None = None, **kwargs: Any) -> None:
        self._held = True
        try:
            super().cell_complete(cell, cell_index, **kwargs)
        finally:
            self._held = False


class SaveBetweenCellsEngine(NBClientEngine):  # type: ignore[misc]
    """nbclient, as papermill runs it, with `SaveBetweenCells` managing the notebook."""

    @classmethod
    def execute_notebook(
        cls,
        nb: Any,
        kernel_name: str,
        output_path: str | None = None,
        progress_bar: bool = True,
        log_output: bool = False,
        autosave_cell_every: int = 30,
        **kwargs: Any,
    ) -> Any:
        manager = SaveBetweenCells(
            nb,
            output_path=output_path,
            progress_bar=progress_bar,
            log_output=log_output,
            autosave_cell_every=autosave_cell_every,
        )
        manager.notebook_start()
        try:
            cls.execute_managed_notebook(manager, kernel_name, log_output=log_output, **kwargs)
        finally:  # on every path: the last state, the failing or interrupted cell's included, is saved
            manager.cleanup_pbar()
            manager.notebook_complete()
        return manager.nb


papermill_engines.register(ENGINE_NAME, SaveBetweenCellsEngine)
