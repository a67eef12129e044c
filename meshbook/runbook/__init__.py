"""Runbooks: the notebooks' public API (`start`) and the papermill runner behind `meshbook run`."""

from meshbook.runbook.session import Session, start

__all__ = ["Session", "start"]
