"""One redactor for every text that may leave a process: evidence, logs, exceptions, tables, notebooks.

Code that learns a secret (a Vault token, the demo secret, a kubeconfig bearer token) registers it with
`Redactor.add` at once, in memory; nothing is read from a file of secrets, so the list of secrets can
never land in a run directory itself. The redactor replaces the value and every common encoding of it
(`meshbook.evidence.encodings`); the hooks that put it in front of logs, tracebacks and IPython are in
`meshbook.evidence.hooks`.

Values shorter than `MIN_LENGTH` are ignored: replacing every "abc" would shred the evidence and such
values are no secrets. Numbers are not rewritten (only text is); the evidence writer refuses a record
whose serialised form still shows a registered value.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from meshbook.evidence.encodings import encoded_forms
from meshbook.evidence.exceptions import RedactedException, redact_exception

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MIN_LENGTH",
    "Form",
    "Redactor",
    "default_redactor",
    "marker",
]

MIN_LENGTH = 4
"""Values shorter than this are not registered."""


_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9_.:#@+=-]+")
E = TypeVar("E", bound=BaseException)
T = TypeVar("T")


def marker(label: str) -> str:
    """The text that replaces a value: `‹redacted:label›` (labels are normalised by `Redactor.add`)."""
    return f"‹redacted:{label}›"


def _normalise_label(label: str) -> str:
    # A marker must survive JSON, HTML, URLs and the `namespace/name` subject shape unchanged, so labels
    # are kept to a safe alphabet: "kubeconfig token" becomes "kubeconfig-token".
    return _LABEL_UNSAFE.sub("-", label.strip()).strip("-")


@dataclass(frozen=True)
class Form:
    """One registered text to replace: which label it stands for and how the value was encoded."""

    text: str
    label: str
    encoding: str

    def __repr__(self) -> str:  # never show the text itself
        return f"Form(label={self.label!r}, encoding={self.encoding!r}, length={len(self.text)})"


@dataclass
class _Compiled:
    forms: tuple[Form, ...]
    by_text: Mapping[str, Form]
    labels: Mapping[str, str]  # label given -> label shown
    _pattern: re.Pattern[str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def uncompiled(self) -> bool:
        return self._pattern is None

    def pattern(self) -> re.Pattern[str] | None:
        """The alternation of every form, compiled on first use: a few hundred forms of long values (keys,
        certificates) take re 0.1-0.2 s, and a redactor asked only for its forms (the leak scan) never
        needs it."""
        if not self.forms:
            return None
        if self._pattern is None:
            with self._lock:
                if self._pattern is None:
                    # Alternation tries branches in order: longest-first makes the longest form win at a position.
                    self._pattern = re.compile("|".join(re.escape(f.text) for f in self.forms))
        return self._pattern


_EMPTY = _Compiled((), {}, {})


class Redactor:
    """Known secret values and their encodings; replaces each with `‹redacted:label›`, longest first.

    Thread-safe: `add` drops the compiled pattern and the next reader compiles it once (the end of a run
    adds dozens of values, each with a dozen encodings: compiling after every `add` cost seconds);
    readers use whichever compiled pattern is current.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, str] = {}
        self._compiled: _Compiled | None = _EMPTY

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
            self._compiled = None  # compiled when next read (`_current`)
        return True

    def _current(self) -> _Compiled:
        compiled = self._compiled
        if compiled is None:
            with self._lock:
                compiled = self._compiled
                if compiled is None:
                    compiled = self._compiled = self._compile()
        return compiled

    def _compile(self) -> _Compiled:
        by_text: dict[str, Form] = {}
        for value, label in self._values.items():
            for encoding, text in encoded_forms(value):
                by_text.setdefault(text, Form(text, label, encoding))
        forms = tuple(sorted(by_text.values(), key=lambda f: (-len(f.text), f.text)))
        # A label may itself contain a registered value ("vault-root-token" after adding "vault-root"):
        # show such labels by number instead, so a marker never carries a secret.
        safe: dict[str, str] = {}
        labels = list(dict.fromkeys(self._values.values()))
        for number, label in enumerate(labels, start=1):
            shown = marker(label)
            safe[label] = f"value-{number}" if any(f.text in shown for f in forms) else label
        forms = tuple(Form(f.text, safe[f.label], f.encoding) for f in forms)
        return _Compiled(forms, {f.text: f for f in forms}, safe)

    def known_values(self) -> dict[str, str]:
        """Each registered value with its label, for the leak scanner; never display or store this."""
        with self._lock:
            if self._compiled is None:
                self._compiled = self._compile()
            shown = self._compiled.labels
            return {value: shown.get(label, label) for value, label in self._values.items()}

    def forms(self) -> tuple[Form, ...]:
        """Every registered text (values and encodings), longest first."""
        return self._current().forms

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Redactor({len(self._values)} values, {len(self._current().forms)} forms)"

    # -- finding and replacing -----------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """`text` with every registered form replaced by its marker."""
        compiled = self._current()
        if not text or (compiled.uncompiled() and not any(f.text in text for f in compiled.forms)):
            return text  # nothing to replace: the pattern stays uncompiled (the end of a run redacts a few words)
        pattern = compiled.pattern()
        if pattern is None:
            return text
        return pattern.sub(lambda m: marker(compiled.by_text[m.group(0)].label), text)

    def find(self, text: str) -> Form | None:
        """The first registered form found in `text`, or None."""
        compiled = self._current()
        pattern = compiled.pattern()
        if pattern is None:
            return None
        match = pattern.search(text)
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
        return redact_exception(self, exc)

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


_default: Redactor | None = None
_default_lock = threading.Lock()


def default_redactor() -> Redactor:
    """The process-wide redactor: every part of meshbook in one process feeds and uses this one."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Redactor()
        return _default
