"""No parameter may carry a credential: parameters are written in plain text into executed notebooks.

Every string in the merged parameters (and every key) goes through the credential detector; a hit is
reported by its class, length and position, never by its value, so the refusal itself leaks nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meshbook.evidence.detectors import CredentialFinding, find_credentials

Loc = tuple[str | int, ...]

ADVICE = (
    "parameters are stored in plain text in executed notebooks, so secrets must stay in Vault or the "
    "cluster: remove it (tokens and keys are read from the cluster or Vault at run time)"
)


@dataclass(frozen=True)
class CarriedCredential:
    """The credentials found in the value (or the key) at `loc`."""

    loc: Loc
    findings: tuple[CredentialFinding, ...]
    in_key: bool = False

    def describe(self) -> str:
        """`carries a GitHub token (40 chars) at character 1; parameters are ...`."""
        where = "its key" if self.in_key else "the value"
        found = ", ".join(f"{f.describe()} at character {f.start + 1}" for f in self.findings)
        return f"{where} carries {_article(found)}; {ADVICE}"


def credentials_in(value: Any, loc: Loc = ()) -> list[CarriedCredential]:
    """Every string in `value` (a parameter mapping) that carries a credential, with its location."""
    found: list[CarriedCredential] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            in_key = find_credentials(str(key))
            if in_key:
                found.append(CarriedCredential((*loc, str(key)), tuple(in_key), in_key=True))
            found += credentials_in(item, (*loc, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += credentials_in(item, (*loc, index))
    elif isinstance(value, str):
        name = next((part for part in reversed(loc) if isinstance(part, str)), None)
        findings = find_credentials(value, key_name=name)
        if findings:
            found.append(CarriedCredential(loc, tuple(findings)))
    return found


def describe_text(text: str) -> str | None:
    """What credential a whole argument (e.g. a malformed `--set`) carries, or None if none."""
    findings = find_credentials(text)
    if not findings:
        return None
    return _article(", ".join(f.describe() for f in findings))


def _article(text: str) -> str:
    vowel = text[:1].lower() in "aeiou" and not text.startswith("URL")
    return ("an " if vowel else "a ") + text
