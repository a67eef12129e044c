"""A package's public names, each imported from its module on first use (PEP 562).

A package facade (`meshbook.evidence`, `meshbook.report`, `meshbook.runbook`) that imported every part at
once made any import of one part pay for all: `meshbook run` needs the redactor and the runner before its
first notebook, not the record models, pandas or the Kubernetes client. The facade keeps its names (and,
under TYPE_CHECKING, their static imports); only the moment each module loads changes.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, modules: Mapping[str, tuple[str, ...]]) -> Callable[[str], Any]:
    """The package's `__getattr__`: `modules` maps a submodule (relative to `package`) to the names it
    provides; a name is imported from it when first read, then kept in the package's namespace."""
    where = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        vars(importlib.import_module(package))[name] = value
        return value

    return __getattr__
