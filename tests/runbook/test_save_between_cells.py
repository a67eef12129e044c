"""One save between two cells: the notebook on disk still shows every finished cell with its outputs and
the running one marked `running`, and the executed notebook is the one papermill's own engine writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import papermill
from papermill.iorw import papermill_io

from meshbook.runbook.kernels import KERNEL_NAME, IPCKernelManager, kernelspec
from meshbook.runbook.papermill_engine import ENGINE_NAME

# The second cell reads the executed notebook as it is on disk while it runs.
ON_DISK = """
import json
book = json.load(open(OUTPUT))
print(json.dumps([
    [c["metadata"]["papermill"].get("status"), "".join("".join(o.get("text", "")) for o in c.get("outputs", []))]
    for c in book["cells"]
]))
"""


class CountingWrites:
    def __init__(self) -> None:
        self.writes = 0

    def read(self, path: str) -> str:
        return Path(path).read_text(encoding="utf-8")

    def write(self, buf: str, path: str) -> None:
        self.writes += 1
        Path(path).write_text(buf, encoding="utf-8")

    def pretty_path(self, path: str) -> str:
        return path

    def listdir(self, path: str) -> list[str]:
        return [str(p) for p in Path(path).iterdir()]


def _run(tmp_path: Path, engine: str | None) -> tuple[Any, int]:
    folder = tmp_path / (engine or "papermill")
    folder.mkdir()
    source, output = folder / "source.ipynb", folder / "executed.ipynb"
    book = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    book.cells = [
        nbformat.v4.new_code_cell(f"OUTPUT = {output.name!r}\nprint('first cell ran')"),  # type: ignore[no-untyped-call]
        nbformat.v4.new_code_cell(ON_DISK),  # type: ignore[no-untyped-call]
        nbformat.v4.new_markdown_cell("the end"),  # type: ignore[no-untyped-call]
    ]
    for n, cell in enumerate(book.cells):
        cell["id"] = f"cell-{n}"
    nbformat.write(book, str(source))  # type: ignore[no-untyped-call]
    counting = CountingWrites()
    papermill_io.register(str(folder) + "/", counting)
    with kernelspec():
        papermill.execute_notebook(
            str(source),
            str(output),
            kernel_name=KERNEL_NAME,
            engine_name=engine,
            progress_bar=False,
            kernel_manager_class=IPCKernelManager,
            cwd=str(folder),
        )
    return nbformat.read(str(output), as_version=4), counting.writes  # type: ignore[no-untyped-call]


def _without_times(book: Any) -> Any:
    data = json.loads(nbformat.writes(book))  # type: ignore[no-untyped-call]
    for cell in data["cells"]:
        cell["metadata"].pop("execution", None)  # nbclient's message times
        for key in ("start_time", "end_time", "duration"):
            cell["metadata"]["papermill"].pop(key, None)
    for key in ("start_time", "end_time", "duration", "input_path", "output_path"):
        data["metadata"]["papermill"].pop(key, None)
    return data


def test_the_running_cell_sees_the_finished_one_on_disk_with_one_save_per_cell(tmp_path: Path) -> None:
    theirs, their_writes = _run(tmp_path, None)
    ours, our_writes = _run(tmp_path, ENGINE_NAME)
    # Both: at the notebook's start and end, and papermill's final write; per cell, twice or once.
    assert their_writes == 3 + 2 * 3, "papermill's own engine"
    assert our_writes == 3 + 3, "one save per cell"
    seen = json.loads(ours.cells[1].outputs[0]["text"])
    assert seen[0] == ["completed", "first cell ran\n"], "the finished cell is on disk, outputs and all"
    assert seen[1][0] == "running" and seen[2][0] == "pending"
    assert _without_times(ours) == _without_times(theirs)
