"""Credentials found by their shape, in any text: parameters before a run, artifacts after it.

The known-value leak scan only finds secrets meshbook read itself; this finds the ones it did not know
(a token typed into a parameter or a notebook). Token formats come from Kingfisher's rule set (a
maintained library of several hundred provider rules, matched by a native regex engine, so a megabyte
takes milliseconds); meshbook adds what a parameter check needs and the library leaves out on purpose:
URL passwords, credential query parameters, a lone AWS key ID, short Vault/OpenBao tokens, and
high-entropy values in keys named like secrets. A finding keeps only the class and the span, never the
value, so it can be reported and scrubbed without being copied.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kingfisher_sdk import Scanner


@dataclass(frozen=True, slots=True)
class CredentialFinding:
    """A credential of class `kind` at `text[start:end]`; the value itself is not kept."""

    kind: str
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start

    def describe(self) -> str:
        """`a GitHub token (40 chars)`: what a message may say about the value."""
        return f"{self.kind} ({self.length} chars)"


# Library rule families (the rule ID without its `betterleaks.` / `kingfisher.` prefix, up to a `.`, `-`
# or `/`) -> the class meshbook reports. Rules not listed are named by their ID.
_LIBRARY_CLASSES: tuple[tuple[str, str], ...] = (
    ("aws", "AWS credential"),
    ("gcp", "GCP credential"),
    ("google", "GCP credential"),
    ("azure", "Azure credential"),
    ("github", "GitHub token"),
    ("gitlab", "GitLab token"),
    ("slack", "Slack token"),
    ("private-key", "private key"),
    ("privkey", "private key"),
    ("jwt", "JWT"),
    ("vault", "Vault token"),
    ("openbao", "OpenBao token"),
    ("generic-credential-uri", "URL password"),
)


def _random_base62(value: str) -> bool:
    """Random base62 mixes cases and has digits or spread; a camelCase word after `s.` does not."""
    body = value[2:]
    if not (any(c.isupper() for c in body) and any(c.islower() for c in body)):
        return False
    return any(c.isdigit() for c in body) or shannon_entropy(body) >= 0.9 * math.log2(len(body))


@dataclass(frozen=True, slots=True)
class _Format:
    """A credential format meshbook looks for beside the library.

    `hints`: literal text one of which every match contains (a cheap `in` test skips the regex on text
    without any); `secret`: the regex group that is the credential (0: the whole match); `plausible`: a
    check on the credential that keeps ordinary words out.
    """

    kind: str
    pattern: re.Pattern[str]
    hints: tuple[str, ...]
    secret: str | int = 0
    plausible: Callable[[str], bool] | None = None


_FORMATS: tuple[_Format, ...] = (
    # The library reports a key ID only next to its secret key; a key ID alone is still a credential here.
    _Format(
        "AWS access key",
        re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16}\b"),
        ("AKIA", "ASIA", "ABIA", "ACCA", "A3T"),
    ),
    _Format(
        "Azure storage account key",
        re.compile(r"AccountKey=(?P<secret>[A-Za-z0-9+/]{86}==)"),
        ("AccountKey=",),
        secret="secret",
    ),
    _Format("Vault token", re.compile(r"(?<![\w.])hv[sbr]\.[A-Za-z0-9_-]{24,}"), ("hvs.", "hvb.", "hvr.")),
    # Legacy Vault and OpenBao service, batch and recovery tokens: `s.` + 24 base62 characters.
    _Format(
        "Vault/OpenBao token",
        re.compile(r"(?<![\w.\-/])[sbr]\.[A-Za-z0-9]{24,}\b"),
        ("s.", "b.", "r."),
        plausible=_random_base62,
    ),
    _Format("JWT", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*"), ("eyJ",)),
    _Format(
        "private key",
        re.compile(
            r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY(?: BLOCK)?-----"
            r"(?:[\s\S]{0,16384}?-----END \1PRIVATE KEY(?: BLOCK)?-----)?"
        ),
        ("PRIVATE KEY",),
    ),
)

# Query (or fragment) parameters that carry a credential, lower case; `key` only with a long value.
_CREDENTIAL_PARAMETERS = frozenset(
    {
        "token",
        "access_token",
        "id_token",
        "refresh_token",
        "auth_token",
        "x-vault-token",
        "password",
        "passwd",
        "pwd",
        "secret",
        "client_secret",
        "api_key",
        "apikey",
        "sig",
        "signature",
        "x-amz-signature",
        "x-amz-security-token",
        "x-goog-signature",
    }
)
_LONG_KEY = 16
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]{1,15}://[^\s\"'<>`\\]+")
_PARAMETER = re.compile(r"(?P<name>[^=&;#?]+)=(?P<value>[^&;#]*)")
# `${VAR}`, `<password>`, `{{ .Values.x }}`, `***`: a template, not a credential.
_PLACEHOLDER = re.compile(r"^(?:\$\{?[A-Za-z_]\w*\}?|<[^<>]*>|\{\{.*\}\}|\*+|x+|%[A-Za-z_]\w*%)$", re.IGNORECASE)

# Words that make a key's name say it holds a secret (matched in the name without separators).
_SECRET_NAME_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "credential",
    "privatekey",
    "accesskey",
    "signature",
    "bearer",
)
_SECRET_NAME_PARTS = frozenset({"pwd", "pass", "sig", "auth", "key"})
_NAME_PARTS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def looks_like_secret_key(name: str) -> bool:
    """Whether a key's name (`password`, `clientSecret`, `X-Vault-Token`, `api_key`) says it holds a secret."""
    compact = re.sub(r"[^a-z0-9]", "", name.lower())
    if any(word in compact for word in _SECRET_NAME_WORDS):
        return True
    return any(part.lower() in _SECRET_NAME_PARTS for part in _NAME_PARTS.findall(name))


def shannon_entropy(value: str) -> float:
    """Bits per character of `value`'s own character distribution."""
    if not value:
        return 0.0
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


_HEX = re.compile(r"^[0-9a-fA-F]+$")
_MIN_RANDOM = 16


def is_high_entropy(value: str) -> bool:
    """Whether `value` looks random rather than chosen: long, varied and spread over character classes.

    Names such as `AWS_SECRET_ACCESS_KEY` or `secret/data/accounts/aws` use one or two classes and
    repeat letters; a generated secret of 16+ characters spreads over three or four, or is long hex.
    """
    if len(value) < _MIN_RANDOM or any(c.isspace() for c in value):
        return False
    entropy = shannon_entropy(value)
    if _HEX.match(value):
        return len(value) >= 20 and entropy >= 3.0
    classes = sum(
        (
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
            any(not c.isalnum() for c in value),
        )
    )
    return classes >= 3 and entropy >= 0.85 * math.log2(min(len(value), 64))


# Data, not credentials: a base64 run this long is an image or a file (a notebook's plot output). Random
# bytes hold every key format's shape somewhere, so searching them finds keys that are not there.
_DATA_BLOB = re.compile(r"[A-Za-z0-9+/]{4096,}={0,2}")


def find_credentials(text: str, key_name: str | None = None) -> list[CredentialFinding]:
    """Every credential in `text`, in order of position, overlapping findings merged into the first.

    `key_name`, when given, is the name of the key `text` is the value of: if it is named like a secret,
    a random-looking word in the value is a credential too ("high-entropy value"). Base64 runs of 4 KiB
    and more (images, files) are not searched.
    """
    text = _DATA_BLOB.sub(lambda m: " " * len(m.group()), text)  # same length: spans stay true
    findings = [*_library_findings(text), *_format_findings(text), *_url_findings(text)]
    if key_name is not None and looks_like_secret_key(key_name):
        findings += [
            CredentialFinding("high-entropy string", m.start(), m.end())
            for m in re.finditer(r"[^\s\"']+", text)
            if is_high_entropy(m.group())
        ]
    return _merge(findings)


def _merge(findings: list[CredentialFinding]) -> list[CredentialFinding]:
    kept: list[CredentialFinding] = []
    for finding in sorted(findings, key=lambda f: (f.start, -f.end)):
        if kept and finding.end <= kept[-1].end:
            continue  # inside a finding already kept (the same token seen by two detectors)
        kept.append(finding)
    return kept


@cache
def _scanner() -> Scanner:
    """Kingfisher's built-in rules, compiled once per process (the library caches the compiled set)."""
    import kingfisher_sdk

    # No base64 layer: spans must point into the text itself; encodings are the leak scan's business.
    return kingfisher_sdk.Scanner(base64=False, redact=True)


def load_rules() -> None:
    """Compile Kingfisher's rules now (about 1.7 s, native code that lets other threads run), e.g. while
    a run's notebooks execute, rather than when the first text is searched."""
    _scanner()


def _library_findings(text: str) -> list[CredentialFinding]:
    data = text.encode("utf-8", errors="surrogatepass")
    hits = [
        (f.location["start_offset"], f.location["end_offset"], _library_class(f.rule_id))
        for f in _scanner().scan(data)
        if f.visible
    ]
    if not hits:
        return []
    to_index = (lambda offset: offset) if len(data) == len(text) else _char_index(data)
    return [CredentialFinding(kind, to_index(start), to_index(end)) for start, end, kind in hits]


def _char_index(data: bytes) -> Callable[[int], int]:
    """UTF-8 byte offset -> str index (the library reports bytes)."""

    def index(offset: int) -> int:
        return len(data[:offset].decode("utf-8", errors="surrogatepass"))

    return index


def _library_class(rule_id: str) -> str:
    short = rule_id.split(".", 1)[1] if rule_id.startswith(("betterleaks.", "kingfisher.")) else rule_id
    short = short.removeprefix("veles.secrets/")
    for family, kind in _LIBRARY_CLASSES:
        if short == family or (short.startswith(family) and short[len(family)] in ".-/"):
            return kind
    return f"credential ({short})"


def _format_findings(text: str) -> Iterator[CredentialFinding]:
    for fmt in _FORMATS:
        if not any(hint in text for hint in fmt.hints):
            continue
        for match in fmt.pattern.finditer(text):
            if fmt.plausible is None or fmt.plausible(match.group(fmt.secret)):
                yield CredentialFinding(fmt.kind, match.start(fmt.secret), match.end(fmt.secret))


def _url_findings(text: str) -> Iterator[CredentialFinding]:
    """Passwords in URL userinfo and values of credential query (or fragment) parameters."""
    if "://" not in text:
        return
    for url in _URL.finditer(text):
        base = url.start()
        value = url.group()
        authority_start = value.index("://") + 3
        authority_end = next((i for i, c in enumerate(value) if i >= authority_start and c in "/?#"), len(value))
        authority = value[authority_start:authority_end]
        if "@" in authority:
            userinfo = authority.rsplit("@", 1)[0]
            if ":" in userinfo:
                password_start = authority_start + userinfo.index(":") + 1
                password = value[password_start : authority_start + len(userinfo)]
                if password and not _PLACEHOLDER.match(password):
                    yield CredentialFinding(
                        "URL password", base + password_start, base + password_start + len(password)
                    )
        query_start = value.find("?", authority_end)
        fragment_start = value.find("#", authority_end)
        starts = [s for s in (query_start, fragment_start) if s != -1]
        if not starts:
            continue
        for parameter in _PARAMETER.finditer(value, min(starts) + 1):
            name = parameter.group("name").lower()
            secret = parameter.group("value")
            if not secret or _PLACEHOLDER.match(secret):
                continue
            if name in _CREDENTIAL_PARAMETERS or (name == "key" and len(secret) >= _LONG_KEY):
                yield CredentialFinding(
                    f"credential query parameter {name}", base + parameter.start("value"), base + parameter.end("value")
                )
