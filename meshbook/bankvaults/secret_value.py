"""A secret held in memory whose every text form hides the value, and scrubbing of messages.

Values read from Vault or the cluster travel as `SecretValue`, so an accidental print, f-string, repr or
pickle (e.g. into a notebook output or evidence) can never carry them.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Any, NoReturn

REDACTED = "<redacted>"


class SecretValue:
    """A secret read from Vault or the cluster: printing, formatting or repr shows only its length.

    `reveal()` returns the value for in-process comparison only; never display or store what it returns.
    Equality with another SecretValue is constant-time; pickling is refused so the value cannot leave the
    process by serialisation (e.g. into a notebook or an evidence file).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"a secret value must be text, got {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        """The value itself, for comparisons inside meshbook; never print, log or return it further."""
        return self._value

    def matches(self, candidate: str) -> bool:
        """Constant-time comparison with `candidate`."""
        return hmac.compare_digest(self._value.encode(), candidate.encode())

    def __len__(self) -> int:
        return len(self._value)

    def __repr__(self) -> str:
        return f"<secret {len(self._value)} chars>"

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SecretValue):
            return self.matches(other._value)
        return NotImplemented

    def __copy__(self) -> SecretValue:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> SecretValue:
        return self

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a SecretValue cannot be pickled: secrets stay in this process")


def scrub(text: str, secrets: Iterable[SecretValue]) -> str:
    """`text` with every occurrence of a known secret replaced, so no message can carry one."""
    for secret in secrets:
        value = secret.reveal()
        if value:
            text = text.replace(value, REDACTED)
    return text
