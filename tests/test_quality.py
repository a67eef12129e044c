"""ruff and mypy (strict on meshbook/) are part of the test suite, so CI enforces them."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.conftest import ROOT


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    assert found, f"{name} is not installed in this environment; run `make test` (installs the dev extra)"
    return found


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False, timeout=600)


def test_ruff_check() -> None:
    proc = _run(_tool("ruff"), "check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format() -> None:
    proc = _run(_tool("ruff"), "format", "--check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict() -> None:
    proc = _run(_tool("mypy"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- the import graph ------------------------------------------------------------------------------------

PACKAGE = ROOT / "meshbook"
# What the sandbox (a separate server process) must never import: it speaks to the rest only over HTTP.
SANDBOX_FORBIDDEN = ("meshbook.runbook", "meshbook.widgets", "meshbook.report", "meshbook.kube")
# The sandbox's floors, top to bottom: a module may import its own floor or any floor below it.
SANDBOX_FLOORS = (
    ("server", "cli"),
    ("addons",),
    ("controllers", "http"),
    ("node",),
    ("apiserver",),
    ("storage", "vault"),
    ("config", "pki", "control", "clock"),
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, known: Mapping[str, Path]) -> set[str]:
    """Every meshbook module `name` imports, wherever the import stands (functions and TYPE_CHECKING too):
    an import moved into a function still ties the two modules together."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    return {m for m in found if m in known and m != name}


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: _imports(name, path, known) for name, path in known.items()}


def _cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_in_meshbook() -> None:
    cycles = _cycles(_graph())
    assert not cycles, "import cycles (imports inside functions count too): " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_sandbox_imports_nothing_of_the_library_side() -> None:
    bad = [
        f"{name} imports {dep}"
        for name, deps in _graph().items()
        if name == "meshbook.sandbox" or name.startswith("meshbook.sandbox.")
        for dep in deps
        if dep.startswith(SANDBOX_FORBIDDEN)
    ]
    assert not bad, "the sandbox speaks to the library only over HTTP:\n" + "\n".join(bad)


def _floor(module: str) -> int | None:
    part = module.removeprefix("meshbook.sandbox.").split(".")[0]
    return next((i for i, names in enumerate(SANDBOX_FLOORS) if part in names), None)


def test_sandbox_imports_point_down_its_floors() -> None:
    graph = _graph()
    unplaced = [m for m in graph if m.startswith("meshbook.sandbox.") and _floor(m) is None]
    assert not unplaced, f"sandbox modules on no floor of SANDBOX_FLOORS: {unplaced}"
    upward = [
        f"{name} (floor {_floor(name)}) imports {dep} (floor {_floor(dep)})"
        for name, deps in graph.items()
        if name.startswith("meshbook.sandbox.")
        for dep in deps
        if dep.startswith("meshbook.sandbox.") and (_floor(dep) or 0) < (_floor(name) or 0)
    ]
    assert not upward, "arrows that run back up the sandbox's floors:\n" + "\n".join(upward)


def test_no_import_cycle_between_meshbook_packages() -> None:
    """Layers are packages too: `kube` may not import `mesh` while `mesh` imports `kube`, even module-free."""

    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    packages: dict[str, set[str]] = {}
    for name, deps in _graph().items():
        packages.setdefault(package(name), set()).update(package(d) for d in deps if package(d) != package(name))
    for deps in packages.values():
        deps &= set(packages)
    cycles = _cycles(packages)
    assert not cycles, "package-level import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)
