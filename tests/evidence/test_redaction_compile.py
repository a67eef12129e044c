"""The redactor compiles its pattern once per batch of values, when it is next used, not after each one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from meshbook.evidence import redaction
from meshbook.evidence.leakscan import scan_directory
from meshbook.evidence.redaction import Redactor

VALUES = [f"secret-value-number-{n:02d}-abcdefgh" for n in range(20)]


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = Redactor._compile

    def counted(self: Redactor) -> redaction._Compiled:
        calls.append(len(self))
        return real(self)

    monkeypatch.setattr(Redactor, "_compile", counted)
    return calls


def test_values_added_without_use_are_not_compiled(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counting(monkeypatch)
    redactor = Redactor()
    for n, value in enumerate(VALUES):
        redactor.add(value, label=f"v{n}")
    assert calls == []
    assert redactor.redact(f"a {VALUES[7]} b") == "a ‹redacted:v7› b"
    assert redactor.redact(VALUES[19]) == "‹redacted:v19›"
    assert calls == [20], "twenty values, used twice: one compilation"


def test_a_value_added_after_use_is_redacted_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counting(monkeypatch)
    redactor = Redactor()
    redactor.add(VALUES[0], label="first")
    assert redactor.redact(VALUES[1]) == VALUES[1]
    redactor.add(VALUES[1], label="second")
    assert redactor.redact(f"{VALUES[0]} {VALUES[1]}") == "‹redacted:first› ‹redacted:second›"
    assert redactor.find(VALUES[1]) is not None
    assert redactor.known_values() == {VALUES[0]: "first", VALUES[1]: "second"}
    assert calls == [1, 2]


def test_an_unused_redactor_redacts_nothing() -> None:
    redactor = Redactor()
    assert redactor.add("abc", label="too short") is False
    assert redactor.redact("abc") == "abc"
    assert redactor.forms() == ()


def _counting_regex(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many alternations of forms were compiled (each `|`-joined pattern of more than one form)."""
    compiled: list[int] = []
    real = redaction.re.compile

    def counted(pattern: str, flags: int = 0) -> object:
        if isinstance(pattern, str) and redaction.re.escape(VALUES[0]) in pattern:
            compiled.append(pattern.count("|"))
        return real(pattern, flags)

    monkeypatch.setattr(redaction.re, "compile", counted)
    return compiled


def test_asking_for_the_forms_compiles_no_pattern(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = _counting_regex(monkeypatch)
    redactor = Redactor()
    for n, value in enumerate(VALUES):
        redactor.add(value, label=f"v{n}")
    assert len(redactor.forms()) > len(VALUES)
    assert compiled == [], "the forms alone need no regular expression"
    assert redactor.redact(VALUES[3]) == "‹redacted:v3›"
    assert redactor.find(VALUES[4]) is not None
    assert len(compiled) == 1, "redact and find share one compiled pattern"


def test_a_label_carrying_a_value_is_shown_by_number_without_the_pattern() -> None:
    redactor = Redactor()
    redactor.add("vault-root", label="first")
    redactor.add("a-longer-secret", label="vault-root-token")
    assert redactor.known_values() == {"vault-root": "first", "a-longer-secret": "value-2"}
    assert redactor.redact("a-longer-secret") == "‹redacted:value-2›"


def test_a_text_without_any_value_is_returned_without_compiling(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = _counting_regex(monkeypatch)
    redactor = Redactor()
    for n, value in enumerate(VALUES):
        redactor.add(value, label=f"v{n}")
    assert redactor.redact("nothing secret here") == "nothing secret here"
    assert redactor.redact_obj({"reason": "a pod was not ready", "n": 3}) == {"reason": "a pod was not ready", "n": 3}
    assert compiled == []
    assert redactor.redact(f"x{VALUES[5]}x") == "x‹redacted:v5›x"
    assert len(compiled) == 1


def test_a_clean_directory_is_scanned_without_compiling_and_a_leak_is_still_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled: list[bytes] = []
    real = re.compile

    def counted(pattern: str | bytes, flags: int = 0) -> object:
        if isinstance(pattern, bytes) and re.escape(VALUES[0].encode()) in pattern:
            compiled.append(pattern)
        return real(pattern, flags)

    monkeypatch.setattr(re, "compile", counted)
    (tmp_path / "clean.txt").write_text("nothing to see")
    values = {value: f"v{n}" for n, value in enumerate(VALUES)}
    assert scan_directory(tmp_path, values).leaks == []
    assert compiled == [], "no form in any file: no regular expression"
    (tmp_path / "leak.txt").write_text(f"oops {VALUES[2]} and {VALUES[2]}")
    leaks = scan_directory(tmp_path, values).leaks
    assert [(str(leak.path), leak.label_or_hint, leak.count) for leak in leaks] == [("leak.txt", "v2", 2)]
    assert len(compiled) == 1
