"""The redactor: every encoding of a value is replaced, and every way text leaves a process is covered."""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import re
import sys
import threading
import types
from typing import Any
from urllib.parse import quote, quote_plus

import pandas as pd
import pytest

from meshbook.evidence.encodings import ENCODINGS, encoded_forms
from meshbook.evidence.exceptions import RedactedException
from meshbook.evidence.hooks import install_exception_hook, install_ipython_handler, install_logging_filter
from meshbook.evidence.redaction import Redactor, default_redactor

# Quotes, a backslash, space, slash, plus, <, &, a non-ASCII letter; its base64 has padding and a "+":
# every encoding differs from it.
SECRET = 'N0t "so" s3cr3t\\ /+é<&~~'
MARK = "‹redacted:db-password›"


@pytest.fixture
def r() -> Redactor:
    red = Redactor()
    assert red.add(SECRET, label="db password") is True
    return red


def _expected_forms(value: str) -> set[str]:
    """The encodings, computed here independently of `encoded_forms`."""
    raw = value.encode()
    std, url = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
    quoted = [quote(value, safe=""), quote_plus(value, safe=""), quote(value)]
    lower = [re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), q) for q in quoted]
    escaped = [json.dumps(value, ensure_ascii=False)[1:-1], json.dumps(value)[1:-1]]
    twice = [json.dumps(e, ensure_ascii=False)[1:-1] for e in escaped]
    hexed = {raw.hex(), raw.hex().upper()}
    return {value, std, std.rstrip("="), url, url.rstrip("="), *hexed, *quoted, *lower, *escaped, *twice} | {
        html.escape(value),
        html.escape(value, quote=False),
    }


def test_encoded_forms_are_the_common_encodings() -> None:
    forms = encoded_forms(SECRET)
    embedded = {text for encoding, text in forms if encoding == "base64-embedded"}
    assert {text for _, text in forms} - embedded == _expected_forms(SECRET)
    # one per alignment (3) in each alphabet, less the base64url ones equal to base64 (no "+" or "/")
    assert len(embedded) == 5
    assert forms[0] == ("plain", SECRET)
    assert [e for e in dict.fromkeys(e for e, _ in forms)] == [e for e in ENCODINGS if e != "line"]


@pytest.mark.parametrize("form", sorted(_expected_forms(SECRET)))
def test_every_encoding_is_redacted(r: Redactor, form: str) -> None:
    assert r.redact(f"<{form}>") == f"<{MARK}>"


def test_value_inside_a_longer_base64_text_is_redacted(r: Redactor) -> None:
    for prefix in (b'{"pw": "', b'{"pw":"', b'{"pw": '):  # three alignments
        blob = base64.b64encode(prefix + SECRET.encode() + b'"}').decode()
        out = r.redact(blob)
        assert out.count(MARK) == 1, (prefix, out)
        assert r.find(out) is None
    blob = base64.b64encode(b'{"pw": "' + SECRET.encode() + b'"}').decode()
    assert r.redact(blob) == f"eyJwdyI6ICJ{MARK}In0="


def test_lines_of_a_multi_line_value_are_redacted_one_by_one() -> None:
    line1, line2 = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "BKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj"
    key = f"-----BEGIN PRIVATE KEY-----\n{line1}\n{line2}\n-----END PRIVATE KEY-----\n"
    red = Redactor()
    red.add(key, label="tls key")
    notebook_text = json.dumps({"text": [f"{line1}\n", f"{line2}\n"]})
    assert red.redact(notebook_text) == '{"text": ["‹redacted:tls-key›\\n", "‹redacted:tls-key›\\n"]}'
    assert red.redact("-----BEGIN PRIVATE KEY-----") == "-----BEGIN PRIVATE KEY-----"


def test_short_values_are_ignored() -> None:
    red = Redactor()
    assert red.add("abc", label="short") is False
    assert red.add("  ab \n", label="short") is False
    assert len(red) == 0
    assert red.redact("abc abcd") == "abc abcd"
    assert red.forms() == ()


def test_stripped_value_is_registered_too() -> None:
    red = Redactor()
    assert red.add("t0ken-value\n", label="file token") is True
    assert red.redact("token=t0ken-value;") == "token=‹redacted:file-token›;"
    assert red.known_values() == {"t0ken-value\n": "file-token", "t0ken-value": "file-token"}


def test_longest_value_wins_and_first_label_is_kept() -> None:
    red = Redactor()
    red.add("abcd", label="short one")
    red.add("abcdefgh", label="long one")
    red.add("abcd", label="ignored")
    assert red.redact("abcdefgh abcd abcdef") == "‹redacted:long-one› ‹redacted:short-one› ‹redacted:short-one›ef"
    assert red.known_values() == {"abcd": "short-one", "abcdefgh": "long-one"}


def test_a_label_holding_a_value_is_replaced_by_a_number() -> None:
    red = Redactor()
    red.add("vault-root", label="vault-root token")
    assert red.redact("x vault-root y") == "x ‹redacted:value-1› y"
    assert red.known_values() == {"vault-root": "value-1"}


def test_label_must_name_something() -> None:
    with pytest.raises(ValueError, match="redaction label"):
        Redactor().add("s3cr3t-value", label=" / ")
    with pytest.raises(TypeError, match="must be text"):
        Redactor().add(b"s3cr3t-value", label="x")  # type: ignore[arg-type]


def test_redact_obj_rewrites_keys_and_values_recursively(r: Redactor) -> None:
    obj = {
        "a": [SECRET, 1, None, {"b": (f"x{SECRET}", 2.5)}],
        SECRET: True,
        f"{SECRET}!": "k",
        json.dumps(SECRET)[1:-1]: "json-escaped key",
    }
    assert r.redact_obj(obj) == {
        "a": [MARK, 1, None, {"b": (f"x{MARK}", 2.5)}],
        MARK: True,
        f"{MARK}!": "k",
        f"{MARK}~2": "json-escaped key",
    }
    assert obj["a"][0] == SECRET  # the input is not changed


def test_repr_of_forms_and_redactor_show_no_value(r: Redactor) -> None:
    shown = repr(r) + repr(r.forms())
    assert all(text not in shown for _, text in encoded_forms(SECRET))
    assert repr(r) == f"Redactor(1 values, {len(encoded_forms(SECRET))} forms)"


def test_default_redactor_is_one_per_process() -> None:
    assert default_redactor() is default_redactor()


# -- logging -------------------------------------------------------------------------------------------


def test_logging_filter_redacts_messages_children_and_tracebacks(r: Redactor) -> None:
    logger = logging.getLogger("tests.evidence.redaction.logging")
    logger.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s %(who)s"))
    logger.handlers = [handler]
    logger.filters = []
    try:
        flt = install_logging_filter(logger, r)
        assert install_logging_filter(logger, r) is flt
        assert logger.filters == [flt] and handler.filters == [flt]
        logger.warning("token %s", SECRET, extra={"who": f"user {SECRET}"})
        logger.getChild("kube").error("url ?t=%s", quote(SECRET, safe=""), extra={"who": "-"})
        try:
            raise ValueError(f"login failed for {SECRET}")
        except ValueError:
            logger.exception("failed", extra={"who": "-"})
        lines = stream.getvalue().splitlines()
        assert lines[0] == f"WARNING tests.evidence.redaction.logging token {MARK} user {MARK}"
        assert lines[1] == f"ERROR tests.evidence.redaction.logging.kube url ?t={MARK} -"
        assert lines[2] == "ERROR tests.evidence.redaction.logging failed -"
        assert lines[-1] == f"ValueError: login failed for {MARK}"
        assert r.find(stream.getvalue()) is None
    finally:
        logger.handlers = []
        logger.filters = []


# -- exceptions ------------------------------------------------------------------------------------------


def test_redact_exception_rewrites_args_notes_and_chain_in_place(r: Redactor) -> None:
    cause = KeyError(SECRET)
    exc = RuntimeError(f"cannot log in with {SECRET}", 3)
    exc.__cause__ = cause
    exc.add_note(f"hint: {SECRET}")
    assert r.redact_exception(exc) is exc
    assert exc.args == (f"cannot log in with {MARK}", 3)
    assert exc.__notes__ == [f"hint: {MARK}"]
    assert exc.__cause__ is cause and str(cause) == repr(MARK)


def test_redact_exception_rewrites_os_error_attributes(r: Redactor) -> None:
    exc = FileNotFoundError(2, "No such file or directory", f"/tmp/{SECRET}")
    assert r.redact_exception(exc) is exc
    assert str(exc) == f"[Errno 2] No such file or directory: '/tmp/{MARK}'"


class _Opaque(Exception):
    """Builds its message from bytes the redactor cannot see."""

    __slots__ = ("_raw",)

    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        super().__init__("opaque")

    def __str__(self) -> str:
        return "token " + self._raw.decode()


def test_redact_exception_overrides_a_custom_str(r: Redactor) -> None:
    exc = _Opaque(SECRET.encode())
    out = r.redact_exception(exc)
    assert out is exc
    assert isinstance(out, _Opaque) and type(out).__name__ == "_Opaque"
    assert str(out) == f"token {MARK}"


def test_redact_exception_stands_in_when_the_class_cannot_change(r: Redactor, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> type:
        raise TypeError("__class__ assignment only supported for mutable types")

    monkeypatch.setattr(types, "new_class", refuse)
    try:
        raise _Opaque(SECRET.encode())
    except _Opaque as caught:
        exc = caught
    out = r.redact_exception(exc)
    assert isinstance(out, RedactedException)
    assert str(out) == f"_Opaque: token {MARK}"
    assert out.original_type == "_Opaque"
    assert out.__traceback__ is exc.__traceback__


def test_exception_hooks_redact_before_the_previous_hook(r: Redactor, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    monkeypatch.setattr(sys, "excepthook", lambda t, v, tb: seen.append(f"{t.__name__}: {v}"))
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(f"thread: {args.exc_value}"))
    install_exception_hook(r)
    install_exception_hook(r)  # installed once
    sys.excepthook(ValueError, ValueError(f"bad {SECRET}"), None)

    def fail() -> None:
        raise OSError(f"x {SECRET}")

    thread = threading.Thread(target=fail)
    thread.start()
    thread.join()
    assert seen == [f"ValueError: bad {MARK}", f"thread: x {MARK}"]


def test_ipython_cell_errors_are_redacted(r: Redactor, capsys: pytest.CaptureFixture[str]) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        shell.InteractiveTB.set_theme_name("nocolor")
        install_ipython_handler(shell, r)
        result = shell.run_cell(f"raise ValueError('login with ' + {SECRET.encode()!r}.decode())")
        shown = capsys.readouterr().out
    finally:
        InteractiveShell.clear_instance()
    assert str(result.error_in_exec) == f"login with {MARK}"
    assert shown.rstrip().splitlines()[-1] == f"ValueError: login with {MARK}"
    assert SECRET not in shown


# -- pandas ------------------------------------------------------------------------------------------------


def test_redact_frame_rewrites_every_string_cell_and_label(r: Redactor) -> None:
    index = ["a", SECRET]
    df = pd.DataFrame(
        {
            "pod": ["app-1", f"app-{SECRET}"],
            "log": pd.Series([f"got {SECRET}", None], dtype=object, index=index),
            "typed": pd.array([SECRET, "ok"], dtype="string"),
            "kind": pd.Categorical([SECRET, "ok"]),
            "restarts": [0, 2],
            SECRET: [1.5, 2.5],
        },
        index=index,
    )
    df.attrs["source"] = f"kubectl logs {SECRET}"
    out = r.redact_frame(df)
    assert out.to_dict(orient="list") == {
        "pod": ["app-1", f"app-{MARK}"],
        "log": [f"got {MARK}", None],
        "typed": [MARK, "ok"],
        "kind": [MARK, "ok"],
        "restarts": [0, 2],
        MARK: [1.5, 2.5],
    }
    assert list(out.index) == ["a", MARK]
    assert out.attrs == {"source": f"kubectl logs {MARK}"}
    assert [str(t) for t in out.dtypes] == ["str", "object", "string", "category", "int64", "float64"]
    assert df.loc["a", "typed"] == SECRET  # the input frame is unchanged
