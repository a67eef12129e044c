"""Exceptions rewritten so their text shows no secret: args, notes, message attributes, cause and context.

An exception is text that leaves a process (a notebook's error output, a log line, papermill's message),
so the redactor rewrites it in place: every holder of the exception then sees the redacted text.
"""

from __future__ import annotations

import types
from typing import Any, Protocol, TypeVar

__all__ = ["RedactedException", "TextRedactor", "redact_exception"]

E = TypeVar("E", bound=BaseException)
T = TypeVar("T")


class TextRedactor(Protocol):
    """What rewriting an exception needs of a redactor (`meshbook.evidence.redaction.Redactor`)."""

    def __len__(self) -> int: ...

    def redact(self, text: str) -> str: ...

    def find(self, text: str) -> object | None: ...

    def redact_obj(self, obj: T) -> T: ...


class RedactedException(Exception):
    """Stands in for an exception whose message could not be rewritten in place (a fixed builtin type)."""

    def __init__(self, original_type: str, message: str) -> None:
        self.original_type = original_type
        super().__init__(f"{original_type}: {message}" if message else original_type)


def redact_exception(redactor: TextRedactor, exc: E) -> E | RedactedException:
    """Rewrite `exc` in place (args, notes, message attributes, its cause and context) and return it.

    Done in place so every holder of the exception (IPython's `error_in_exec`, a logger's
    `exc_info`) sees the redacted text. When a builtin exception type still shows a value from
    state that cannot be rewritten, a `RedactedException` with the redacted message is returned
    instead, carrying the original traceback.
    """
    return _redact(redactor, exc, set())


def _redact(r: TextRedactor, exc: E, seen: set[int]) -> E | RedactedException:
    if id(exc) in seen or len(r) == 0:
        return exc
    seen.add(id(exc))
    exc.args = r.redact_obj(exc.args)
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, list):
        exc.__notes__ = [r.redact(n) if isinstance(n, str) else n for n in notes]
    # Builtins that build their message from attributes rather than args.
    for attribute in ("strerror", "filename", "filename2", "msg", "text", "name", "path", "reason"):
        try:
            current = getattr(exc, attribute, None)
            if isinstance(current, str) and r.find(current) is not None:
                setattr(exc, attribute, r.redact(current))
        except Exception:  # a read-only or computed attribute: the str() check below still applies
            pass
    for attribute, current in list(getattr(exc, "__dict__", {}).items()):
        if isinstance(current, str | list | tuple | dict):
            redacted = r.redact_obj(current)
            if redacted != current:
                setattr(exc, attribute, redacted)
    for sub in getattr(exc, "exceptions", ()):  # exception groups: members are rewritten in place
        if isinstance(sub, BaseException):
            _redact(r, sub, seen)
    if exc.__cause__ is not None:
        exc.__cause__ = _redact(r, exc.__cause__, seen)
    if exc.__context__ is not None:
        exc.__context__ = _redact(r, exc.__context__, seen)
    try:
        text = str(exc)
    except Exception:  # a broken __str__ shows nothing of the value either
        return exc
    if r.find(text) is None:
        return exc
    # A custom __str__ builds the message from state we did not see: override it on a subclass.
    redacted_text = r.redact(text)
    cls = type(exc)

    def body(namespace: dict[str, Any]) -> None:
        # No new slots and no __dict__ of its own: the layout stays the same, so __class__ may change.
        namespace.update(__str__=lambda _self: redacted_text, __module__=cls.__module__)
        namespace.update(__qualname__=cls.__qualname__, __slots__=())

    try:
        exc.__class__ = types.new_class(cls.__name__, (cls,), exec_body=body)
        return exc
    except TypeError:
        replacement = RedactedException(cls.__name__, redacted_text)
        replacement.__traceback__ = exc.__traceback__
        replacement.__cause__ = exc.__cause__
        replacement.__suppress_context__ = True
        return replacement
