"""`meshbook run` starts without paying for what only notebooks or the run's end need, and the package
facades that load their names lazily still give every name (and refuse unknown ones)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

# Heavy modules the runner's process must not import before its first notebook runs.
NOT_BEFORE_THE_FIRST_NOTEBOOK = ("kubernetes", "pandas", "jinja2", "meshbook.evidence.payloads", "meshbook.report")


def _imported_by(statement: str, names: tuple[str, ...]) -> list[str]:
    code = f"import sys\n{statement}\nprint(' '.join(n for n in {names!r} if n in sys.modules))"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=300
    )
    return proc.stdout.split()


def test_the_finder_sees_a_heavy_import() -> None:
    assert _imported_by("import meshbook.runbook.session", NOT_BEFORE_THE_FIRST_NOTEBOOK)[:2] == [
        "kubernetes",
        "pandas",
    ]


def test_the_run_command_imports_no_heavy_module_before_it_runs() -> None:
    statement = (
        "import meshbook.cli, meshbook.runbook.summary, meshbook.runbook.execute, meshbook.runbook.kernels\n"
        "meshbook.cli.build_parser()"
    )
    assert _imported_by(statement, NOT_BEFORE_THE_FIRST_NOTEBOOK) == []


def test_papermill_comes_without_the_grammars_jsonschema_would_compile() -> None:
    statement = "from meshbook.runbook.execute import import_papermill\nimport_papermill()"
    assert _imported_by(statement, ("papermill", "nbclient", "jsonschema", "lark")) == [
        "papermill",
        "nbclient",
        "jsonschema",
    ]


def test_an_unknown_name_of_a_lazy_facade_is_an_attribute_error() -> None:
    import meshbook.evidence
    import meshbook.runbook

    with pytest.raises(AttributeError, match=r"'meshbook\.evidence' has no attribute 'Nothing'"):
        _ = meshbook.evidence.Nothing  # type: ignore[attr-defined]
    with pytest.raises(ImportError):
        from meshbook.runbook import nothing  # type: ignore[attr-defined]  # noqa: F401


def test_every_name_of_a_lazy_facade_resolves_to_its_module_s_object() -> None:
    import meshbook.evidence
    import meshbook.runbook
    from meshbook.evidence.redaction import Redactor
    from meshbook.runbook.session import start

    for package in (meshbook.evidence, meshbook.runbook):
        for name in package.__all__:
            assert getattr(package, name) is not None, f"{package.__name__}.{name}"
    assert meshbook.evidence.Redactor is Redactor
    assert meshbook.runbook.start is start
