"""The scheduling table in tests/conftest.py names modules that exist: a renamed module would silently lose
its place at the front of the queue (and the suite its balance between workers)."""

from __future__ import annotations

import pytest

from tests.conftest import COSTLIEST_MODULES, ROOT


def test_costliest_modules_exist_and_are_named_once() -> None:
    missing = [path for path in COSTLIEST_MODULES if not (ROOT / path).is_file()]
    assert missing == [], f"tests/conftest.py COSTLIEST_MODULES names modules that do not exist: {missing}"
    assert len(set(COSTLIEST_MODULES)) == len(COSTLIEST_MODULES)


def test_costliest_modules_run_first(request: pytest.FixtureRequest) -> None:
    """Collection order (what xdist hands out, its reordering off) starts with the table's modules in order."""
    modules = list(dict.fromkeys(item.nodeid.split("::", 1)[0] for item in request.session.items))
    ranked = [m for m in modules if m in COSTLIEST_MODULES]
    assert ranked == [m for m in COSTLIEST_MODULES if m in modules]
    assert modules[: len(ranked)] == ranked
    if hasattr(request.config.option, "loadscopereorder"):
        assert request.config.option.loadscopereorder is False
