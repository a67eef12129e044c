"""One redactor for every text that may leave a process: evidence, logs, exceptions, tables, notebooks.

Code that learns a secret (a Vault token, the demo secret, a kubeconfig bearer token) registers it with
`Redactor.add` at once, in memory; nothing is read from a file of secrets, so the list of secrets can
never land in a run directory itself. A secret rarely leaks verbatim: a Kubernetes Secret holds it in
base64, a URL in percent-encoding, a notebook or JSON file with quotes escaped (twice when a notebook
output shows JSON), an HTML report with entities. `encoded_forms` is the one list of those forms; the
redactor replaces all of them and the leak scanner (`meshbook.evidence.leakscan`) searches for the very
same list, so what the scanner can find the redactor can remove.

Values shorter than `MIN_LENGTH` are ignored: replacing every "abc" would shred the evidence and such
values are no secrets. Numbers are not rewritten (only text is); the evidence writer refuses a record
whose serialised form still shows a registered value.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import sys
import threading
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import quote, quote_plus

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ENCODINGS",
    "MIN_LENGTH",
    "Form",
    "RedactedException",
    "RedactingFilter",
    "Redactor",
    "default_redactor",
    "encoded_forms",
    "install_exception_hook",
    "install_logging_filter",
    "marker",
]

MIN_LENGTH = 4
"""Values shorter than this are not registered."""

EMBEDDED_MIN = 12
"""Shortest base64 run accepted as 'the value inside a longer base64 text' (about 9 bytes of value)."""

LINE_MIN = 16
"""Shortest line of a multi-line value (a PEM key, a kubeconfig) registered on its own."""

ENCODINGS = (
    "plain",
    "line",
    "base64",
    "base64url",
    "base64-embedded",
    "url",
    "json",
    "json-double",
    "html",
)
"""Every encoding name `encoded_forms` can report, in the order it generates them."""

_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9_.:#@+=-]+")
_PCT = re.compile(r"%[0-9A-F]{2}")
E = TypeVar("E", bound=BaseException)
T = TypeVar("T")


def marker(label: str) -> str:
    """The text that replaces a value: `‹redacted:label›` (labels are normalised by `Redactor.add`)."""
    return f"‹redacted:{label}›"


def _normalise_label(label: str) -> str:
    # A marker must survive JSON, HTML, URLs and the `namespace/name` subject shape unchanged, so labels
    # are kept to a safe alphabet: "kubeconfig token" becomes "kubeconfig-token".
    return _LABEL_UNSAFE.sub("-", label.strip()).strip("-")


def _embedded_cores(raw: bytes, alphabet: Callable[[bytes], bytes]) -> list[str]:
    """The base64 characters that depend only on `raw`, for each of its 3 possible alignments.

    Inside a longer base64 text (a Secret holding a whole config file) the value's own characters are
    the same whatever surrounds it, except the first and last one or two, which mix in neighbouring bytes.
    """
    cores: list[str] = []
    for shift in range(3):
        encoded = alphabet(b"\0" * shift + raw).decode("ascii")
        first = -(-8 * shift // 6)  # ceil: first character made only of value bits
        last = (8 * (shift + len(raw))) // 6  # characters before this one are complete
        core = encoded[first:last]
        if len(core) >= EMBEDDED_MIN:
            cores.append(core)
    return cores


def _lower_pct(text: str) -> str:
    return _PCT.sub(lambda m: m.group(0).lower(), text)


def encoded_forms(value: str) -> list[tuple[str, str]]:
    """`(encoding, text)` for the value and each distinct common encoding of it, value first.

    The single list used by the redactor and the leak scanner: plain; each line of a multi-line value;
    base64 and base64url with and without padding, and the value's run inside a longer base64 text;
    percent-encoding (quote, quote_plus, lower-case hex); JSON string escaping (UTF-8 and ASCII-only)
    and that escaped again (JSON shown inside a notebook's JSON); HTML/XML entities.
    """
    raw = value.encode("utf-8")
    candidates: list[tuple[str, str]] = [("plain", value)]
    if "\n" in value.strip():
        for line in value.splitlines():
            line = line.strip()
            if len(line) >= LINE_MIN and not line.startswith("-----"):
                candidates.append(("line", line))
    for name, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
        full = encode(raw).decode("ascii")
        candidates += [(name, full), (name, full.rstrip("="))]
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        candidates += [("base64-embedded", core) for core in _embedded_cores(raw, encode)]
    for url in (quote(value, safe=""), quote_plus(value, safe=""), quote(value)):
        candidates += [("url", url), ("url", _lower_pct(url))]
    escaped = [json.dumps(value, ensure_ascii=False)[1:-1], json.dumps(value)[1:-1]]
    candidates += [("json", text) for text in escaped]
    candidates += [("json-double", json.dumps(text, ensure_ascii=False)[1:-1]) for text in escaped]
    candidates += [("html", html.escape(value, quote=True)), ("html", html.escape(value, quote=False))]
    forms: list[tuple[str, str]] = []
    seen: set[str] = set()
    for encoding, text in candidates:
        if text and text not in seen:
            seen.add(text)
            forms.append((encoding, text))
    return forms


@dataclass(frozen=True)
class Form:
    """One registered text to replace: which label it stands for and how the value was encoded."""

    text: str
    label: str
    encoding: str

    def __repr__(self) -> str:  # never show the text itself
        return f"Form(label={self.label!r}, encoding={self.encoding!r}, length={len(self.text)})"


@dataclass(frozen=True)
class _Compiled:
    pattern: re.Pattern[str] | None
    forms: tuple[Form, ...]
    by_text: Mapping[str, Form]
    labels: Mapping[str, str]  # label given -> label shown


_EMPTY = _Compiled(None, (), {}, {})


class RedactedException(Exception):
    """Stands in for an exception whose message could not be rewritten in place (a fixed builtin type)."""

    def __init__(self, original_type: str, message: str) -> None:
        self.original_type = original_type
        super().__init__(f"{original_type}: {message}" if message else original_type)


class Redactor:
    """Known secret values and their encodings; replaces each with `‹redacted:label›`, longest first.

    Thread-safe: `add` swaps in a new compiled pattern, readers use whichever one is current.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, str] = {}
        self._compiled = _EMPTY

    # -- registering ---------------------------------------------------------------------------------

    def add(self, value: str, *, label: str) -> bool:
        """Register a secret value (and its encodings) under `label`; False when ignored as too short.

        Too short means fewer than `MIN_LENGTH` characters once surrounding whitespace is removed; a
        value with surrounding whitespace (read from a file, a log line) is registered stripped too.
        The first label given for a value is kept. Labels are shown in markers with characters outside
        `A-Za-z0-9_.:#@+=-` replaced by "-".
        """
        if not isinstance(value, str):
            raise TypeError(f"a secret value must be text, got {type(value).__name__}")
        shown = _normalise_label(label)
        if not shown:
            raise ValueError("a redaction label needs at least one letter or digit")
        if len(value.strip()) < MIN_LENGTH:
            return False
        with self._lock:
            new = [v for v in dict.fromkeys((value, value.strip())) if v not in self._values]
            if not new:
                return True
            for v in new:
                self._values[v] = shown
            self._compiled = self._compile()
        return True

    def _compile(self) -> _Compiled:
        by_text: dict[str, Form] = {}
        for value, label in self._values.items():
            for encoding, text in encoded_forms(value):
                by_text.setdefault(text, Form(text, label, encoding))
        forms = tuple(sorted(by_text.values(), key=lambda f: (-len(f.text), f.text)))
        # Alternation tries branches in order, so longest-first makes the longest form win at a position.
        pattern = re.compile("|".join(re.escape(f.text) for f in forms))
        # A label may itself contain a registered value ("vault-root-token" after adding "vault-root"):
        # show such labels by number instead, so a marker never carries a secret.
        safe: dict[str, str] = {}
        labels = list(dict.fromkeys(self._values.values()))
        for number, label in enumerate(labels, start=1):
            safe[label] = f"value-{number}" if pattern.search(marker(label)) else label
        forms = tuple(Form(f.text, safe[f.label], f.encoding) for f in forms)
        return _Compiled(pattern, forms, {f.text: f for f in forms}, safe)

    def known_values(self) -> dict[str, str]:
        """Each registered value with its label, for the leak scanner; never display or store this."""
        with self._lock:
            shown = self._compiled.labels
            return {value: shown.get(label, label) for value, label in self._values.items()}

    def forms(self) -> tuple[Form, ...]:
        """Every registered text (values and encodings), longest first."""
        return self._compiled.forms

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Redactor({len(self._values)} values, {len(self._compiled.forms)} forms)"

    # -- finding and replacing -----------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """`text` with every registered form replaced by its marker."""
        compiled = self._compiled
        if compiled.pattern is None or not text:
            return text
        return compiled.pattern.sub(lambda m: marker(compiled.by_text[m.group(0)].label), text)

    def find(self, text: str) -> Form | None:
        """The first registered form found in `text`, or None."""
        compiled = self._compiled
        if compiled.pattern is None:
            return None
        match = compiled.pattern.search(text)
        return compiled.by_text[match.group(0)] if match else None

    def redact_obj(self, obj: T) -> T:
        """A copy of `obj` with every string redacted, in dicts (keys and values), lists and tuples.

        Other objects are returned as they are. Two keys that redact to the same marker stay distinct
        (`‹redacted:x›~2`), so no entry is lost.
        """
        return cast(T, self._redact_any(obj))

    def _redact_any(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, Mapping):
            out: dict[Any, Any] = {}
            for key, item in obj.items():
                new_key = self.redact(key) if isinstance(key, str) else key
                if new_key in out:
                    n = 2
                    while f"{new_key}~{n}" in out:
                        n += 1
                    new_key = f"{new_key}~{n}"
                out[new_key] = self._redact_any(item)
            return out
        if isinstance(obj, list):
            return [self._redact_any(item) for item in obj]
        if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
            return tuple(self._redact_any(item) for item in obj)
        if isinstance(obj, tuple):  # a named tuple keeps its type
            return type(obj)(*(self._redact_any(item) for item in obj))
        return obj

    # -- integration points --------------------------------------------------------------------------

    def redact_exception(self, exc: E) -> E | RedactedException:
        """Rewrite `exc` in place (args, notes, message attributes, its cause and context) and return it.

        Done in place so every holder of the exception (IPython's `error_in_exec`, a logger's
        `exc_info`) sees the redacted text. When a builtin exception type still shows a value from
        state that cannot be rewritten, a `RedactedException` with the redacted message is returned
        instead, carrying the original traceback.
        """
        return self._redact_exception(exc, set())

    def _redact_exception(self, exc: E, seen: set[int]) -> E | RedactedException:
        if id(exc) in seen or self._compiled.pattern is None:
            return exc
        seen.add(id(exc))
        exc.args = self.redact_obj(exc.args)
        notes = getattr(exc, "__notes__", None)
        if isinstance(notes, list):
            exc.__notes__ = [self.redact(n) if isinstance(n, str) else n for n in notes]
        # Builtins that build their message from attributes rather than args.
        for attribute in ("strerror", "filename", "filename2", "msg", "text", "name", "path", "reason"):
            try:
                current = getattr(exc, attribute, None)
                if isinstance(current, str) and self.find(current) is not None:
                    setattr(exc, attribute, self.redact(current))
            except Exception:  # a read-only or computed attribute: the str() check below still applies
                pass
        for attribute, current in list(getattr(exc, "__dict__", {}).items()):
            if isinstance(current, str | list | tuple | dict):
                redacted = self.redact_obj(current)
                if redacted != current:
                    setattr(exc, attribute, redacted)
        for sub in getattr(exc, "exceptions", ()):  # exception groups: members are rewritten in place
            if isinstance(sub, BaseException):
                self._redact_exception(sub, seen)
        if exc.__cause__ is not None:
            exc.__cause__ = self._redact_exception(exc.__cause__, seen)
        if exc.__context__ is not None:
            exc.__context__ = self._redact_exception(exc.__context__, seen)
        try:
            text = str(exc)
        except Exception:  # a broken __str__ shows nothing of the value either
            return exc
        if self.find(text) is None:
            return exc
        # A custom __str__ builds the message from state we did not see: override it on a subclass.
        redacted_text = self.redact(text)
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

    def redact_frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """A copy of `df` with every string cell, column label and index label redacted."""
        import pandas as pd

        def one(value: Any) -> Any:
            return self.redact(value) if isinstance(value, str) else value

        out = df.copy()
        for position in range(df.shape[1]):
            series = df.iloc[:, position]
            dtype = series.dtype
            if isinstance(dtype, pd.CategoricalDtype):
                out.isetitem(position, series.map(one).array)
            elif pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
                # element by element, keeping the dtype (map would infer a new one and turn None into NaN)
                # (a Series, not an array: pandas would re-infer an object array as str; stubs omit Series)
                cells = pd.Series([one(v) for v in series.tolist()], dtype=dtype, index=series.index)
                out.isetitem(position, cells)  # type: ignore[arg-type]
        out = out.rename(index=one, columns=one)
        out.attrs = self.redact_obj(dict(df.attrs))
        return out


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


_default: Redactor | None = None
_default_lock = threading.Lock()


def default_redactor() -> Redactor:
    """The process-wide redactor: every part of meshbook in one process feeds and uses this one."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Redactor()
        return _default
