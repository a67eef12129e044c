"""Where redaction plugs in: logging, uncaught exceptions (threads too) and IPython cells.

Each hook rewrites text on its way out with a `Redactor` (default: the process-wide one), so a secret
registered once is redacted in every log line and traceback a run shows or stores.
"""

from __future__ import annotations

import logging
import sys
import threading
import types
from typing import Any

from meshbook.evidence.redaction import Redactor, default_redactor

__all__ = ["RedactingFilter", "install_exception_hook", "install_ipython_handler", "install_logging_filter"]


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the formatted message, extra string fields and exception text."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        r = self.redactor
        try:
            message = record.getMessage()
        except Exception:  # wrong args for the format: keep the raw text, redacted
            message = f"{record.msg} {record.args!r}"
        record.msg = r.redact(message)
        record.args = None
        for key, value in list(vars(record).items()):
            if isinstance(value, str) and key != "msg":
                setattr(record, key, r.redact(value))
        if record.exc_info and record.exc_info[1] is not None:
            exc = r.redact_exception(record.exc_info[1])
            record.exc_info = (type(exc), exc, record.exc_info[2])
            record.exc_text = r.redact(logging.Formatter().formatException(record.exc_info))
        return True


def install_logging_filter(logger: logging.Logger | None = None, redactor: Redactor | None = None) -> RedactingFilter:
    """Redact what `logger` (default: the root logger) emits; returns the filter (installed once).

    The filter goes on the logger (records logged on it) and on each of its current handlers (records
    propagated from child loggers, which a logger's own filters never see). Install on the root logger
    to cover every handler configured there.
    """
    logger = logger if logger is not None else logging.getLogger()
    redactor = redactor if redactor is not None else default_redactor()
    existing = [f for f in logger.filters if isinstance(f, RedactingFilter) and f.redactor is redactor]
    flt = existing[0] if existing else RedactingFilter(redactor)
    for target in [logger, *logger.handlers]:
        if flt not in target.filters:
            target.addFilter(flt)
    return flt


def install_exception_hook(redactor: Redactor | None = None) -> None:
    """Redact uncaught exceptions: `sys.excepthook`, `threading.excepthook` and, in IPython, cell errors.

    In IPython (and so in a papermill kernel) a custom exception handler redacts the exception in place
    before IPython shows it, so the notebook's error output, the kernel's `evalue` and papermill's
    message carry the redacted text. It replaces any other IPython custom exception handler.
    """
    r = redactor if redactor is not None else default_redactor()
    previous = sys.excepthook

    def excepthook(etype: type[BaseException], value: BaseException, tb: types.TracebackType | None) -> None:
        value2 = r.redact_exception(value)
        previous(type(value2), value2, tb)

    if not getattr(previous, "_meshbook_redacting", False):
        excepthook._meshbook_redacting = True  # type: ignore[attr-defined]
        sys.excepthook = excepthook

    previous_thread = threading.excepthook

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            r.redact_exception(args.exc_value)
        previous_thread(args)

    if not getattr(previous_thread, "_meshbook_redacting", False):
        thread_hook._meshbook_redacting = True  # type: ignore[attr-defined]
        threading.excepthook = thread_hook

    ipython = sys.modules.get("IPython")  # only present when running under IPython (or imported)
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if callable(get_ipython) else None
    if shell is not None:
        install_ipython_handler(shell, r)


def install_ipython_handler(shell: Any, redactor: Redactor) -> None:
    """Make IPython `shell` redact every exception a cell raises before showing it."""

    def handler(
        ip: Any, etype: type[BaseException], value: BaseException, tb: Any, tb_offset: int | None = None
    ) -> None:
        shown = redactor.redact_exception(value)
        ip.showtraceback((type(shown), shown, tb), tb_offset=tb_offset)

    shell.set_custom_exc((Exception,), handler)
