"""The redactor compiles its pattern once per batch of values, when it is next used, not after each one."""

from __future__ import annotations

import pytest

from meshbook.evidence import redaction
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
