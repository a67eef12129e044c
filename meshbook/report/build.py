"""Write report.html, report.md and junit.xml for one run (into its directory) or several (into `out`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from meshbook.errors import ParameterError
from meshbook.evidence.reader import no_cycle_collection
from meshbook.evidence.redaction import default_redactor
from meshbook.report.html import render_html
from meshbook.report.junit import render_junit
from meshbook.report.markdown import render_markdown
from meshbook.report.rundir import RunData, read_run

__all__ = ["REPORT_FILES", "build_reports", "read_runs"]

REPORT_FILES = ("report.html", "report.md", "junit.xml")


def read_runs(run_dirs: Sequence[Path]) -> list[RunData]:
    """Read each run directory; ParameterError (exit 2) naming those that are not run directories."""
    missing = [str(d) for d in run_dirs if not Path(d).is_dir()]
    if missing:
        raise ParameterError([f"{d}: not a run directory" for d in missing])
    not_runs = [str(d) for d in run_dirs if not any((Path(d) / f).exists() for f in ("evidence.jsonl", "summary.json"))]
    if not_runs:
        raise ParameterError(
            [f"{d}: no evidence.jsonl or summary.json: not a meshbook run directory" for d in not_runs]
        )
    return [read_run(Path(d)) for d in run_dirs]


def _write(path: Path, text: str) -> None:
    """Write atomically (a reader never sees half a report); the text passes the redactor once more."""
    data = default_redactor().redact(text).encode("utf-8")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def build_reports(run_dirs: list[Path], out: Path | None = None) -> list[Path]:
    """Write the reports and return their paths (report.html, report.md, junit.xml).

    One run: into `out`, default the run directory itself. Several runs: `out` is required and gets
    one combined set (comparison first). The output depends only on the run directories' contents, so
    building twice gives identical files (a manifest written after the first build still verifies).
    """
    if not run_dirs:
        raise ParameterError(["no run directory given"])
    if out is None:
        if len(run_dirs) > 1:
            raise ParameterError([f"{len(run_dirs)} run directories: name an output directory with --out DIR"])
        out = Path(run_dirs[0])
    with no_cycle_collection():  # 100,000 records live until the end: ~40% of the build
        runs = read_runs([Path(d) for d in run_dirs])
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        renderers = {"report.html": render_html, "report.md": render_markdown, "junit.xml": render_junit}
        paths = []
        for name in REPORT_FILES:
            path = out / name
            _write(path, renderers[name](runs))
            paths.append(path)
    return paths
