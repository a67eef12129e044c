"""Runbooks: the notebooks' public API (`start`) and the papermill runner behind `meshbook run`.

`start` and `Session` load their module on first use (`meshbook.lazy_names`): `meshbook run` imports the
runner from this package without the Kubernetes client and pandas the notebooks' kernels need.
"""

from typing import TYPE_CHECKING

from meshbook.lazy_names import lazy_names

if TYPE_CHECKING:
    from meshbook.runbook.session import Session, start

__getattr__ = lazy_names(__name__, {"session": ("Session", "start")})

__all__ = ["Session", "start"]
