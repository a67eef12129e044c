"""Reports over run directories: report.html (self-contained), report.md, junit.xml, and DataFrames.

`build_reports(run_dirs, out)` writes the three files; `load(run_dirs)` gives notebook users pandas
DataFrames (evidence, notebooks, pods, deliveries, policies). Everything is read from the run directory
(evidence is already redacted: deliveries carry keyed fingerprints, never values), and every string is
escaped for the format it goes into.
"""

from meshbook.report.advice import Advice, advise
from meshbook.report.build import REPORT_FILES, build_reports, read_runs
from meshbook.report.history import Change, RunDiff, comparison_table, diff_runs, history
from meshbook.report.html import render_html
from meshbook.report.junit import render_junit
from meshbook.report.load import load
from meshbook.report.markdown import render_markdown
from meshbook.report.rundir import NotebookRun, RunData, read_run
from meshbook.report.topology import Topology, topology, topology_svg

__all__ = [
    "REPORT_FILES",
    "Advice",
    "Change",
    "NotebookRun",
    "RunData",
    "RunDiff",
    "Topology",
    "advise",
    "build_reports",
    "comparison_table",
    "diff_runs",
    "history",
    "load",
    "read_run",
    "read_runs",
    "render_html",
    "render_junit",
    "render_markdown",
    "topology",
    "topology_svg",
]
