"""The kubernetes client's generated models read as data from their source, without importing the client.

The sandbox needs only each model's two literal tables, `openapi_types` (attribute -> type text) and
`attribute_map` (attribute -> JSON name). Importing `kubernetes.client` runs the package's `__init__`,
which loads its kubeconfig, OAuth, WebSocket, watch and informer modules (about 23 MB resident in the
server process, which never uses them), so the tables are read from the generated files with `ast`,
one model file at a time as kinds are looked up. `models.V1PodSpec` is then a class that carries
exactly those two tables, so `builtin.py` and `http/openapi/schemas.py` read it as they read the
client's own model class.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib.util
from pathlib import Path
from typing import Any


class ClientModelError(RuntimeError):
    """The installed kubernetes client's model sources are not laid out as this reader expects."""


def _models_dir() -> Path:
    spec = importlib.util.find_spec("kubernetes")  # a top-level name: found, not imported
    if spec is None or not spec.submodule_search_locations:
        raise ClientModelError("the `kubernetes` package (the official client) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "client" / "models"


@functools.cache
def _module_of() -> dict[str, str]:
    """Model class name -> module file stem, from `models/__init__.py` (its lazy `_exports` table, or the
    `from kubernetes.client.models.X import Y` lines of clients that import every model eagerly)."""
    init = _models_dir() / "__init__.py"
    tree = ast.parse(init.read_text(encoding="utf-8"), filename=str(init))
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_exports" for t in node.targets):
            exports = ast.literal_eval(node.value)
            found.update({name: module.lstrip(".") for name, module in exports.items()})
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("kubernetes.client.models."):
            stem = (node.module or "").rsplit(".", 1)[1]
            found.update({alias.asname or alias.name: stem for alias in node.names})
    if not found:
        raise ClientModelError(f"{init}: expected a table of model classes (`_exports` or imports), found none")
    return found


def _class_tables(name: str, stem: str) -> dict[str, dict[str, str]]:
    path = _models_dir() / f"{stem}.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    tables: dict[str, dict[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            for statement in node.body:
                # `openapi_types = {...}`, or `openapi_types: ClassVar[Dict[str, str]] = {...}` (pydantic models)
                if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                    target, value = statement.targets[0], statement.value
                elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
                    target, value = statement.target, statement.value
                else:
                    continue
                if isinstance(target, ast.Name) and target.id in ("openapi_types", "attribute_map"):
                    with contextlib.suppress(ValueError):  # not a literal: reported below as missing
                        tables[target.id] = ast.literal_eval(value)
    if set(tables) != {"openapi_types", "attribute_map"}:
        raise ClientModelError(f"{path}: class {name} should define openapi_types and attribute_map as literals")
    return tables


class _Models:
    """Attribute access like `kubernetes.client.models`: `models.V1Pod` is a class with the model's tables."""

    @functools.cache  # noqa: B019 - one instance for the process, which lives as long as the cache
    def __getattr__(self, name: str) -> Any:
        stem = _module_of().get(name)
        if stem is None:
            raise AttributeError(f"the kubernetes client has no model {name!r}")
        return type(name, (), _class_tables(name, stem))


models = _Models()
