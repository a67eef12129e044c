"""Every common encoding of a secret value: the one list the redactor replaces and the leak scan seeks.

A secret rarely leaks verbatim: a Kubernetes Secret holds it in base64, a URL in percent-encoding, a
notebook or JSON file with quotes escaped (twice when a notebook output shows JSON), an HTML report with
entities, a debug dump in hex. (Compressed files are the scanner's business: it searches inside gzip
members for these same forms.) `encoded_forms` lists those forms; the redactor
(`meshbook.evidence.redaction`) replaces all of them and the leak scanner (`meshbook.evidence.leakscan`)
searches for the very same list, so what the scanner can find the redactor can remove.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Callable
from urllib.parse import quote, quote_plus

__all__ = ["EMBEDDED_MIN", "ENCODINGS", "LINE_MIN", "encoded_forms"]

EMBEDDED_MIN = 8
"""Shortest base64 run accepted as 'the value inside a longer base64 text' (48 bits: values of 7 bytes
or more are found at all three alignments; a random match in 100 MB of base64 has odds below 1 in 10^6
per value and alignment)."""

LINE_MIN = 16
"""Shortest line of a multi-line value (a PEM key, a kubeconfig) registered on its own."""

ENCODINGS = (
    "plain",
    "line",
    "base64",
    "base64url",
    "base64-embedded",
    "hex",
    "url",
    "json",
    "json-double",
    "html",
)
"""Every encoding name `encoded_forms` can report, in the order it generates them."""

_PCT = re.compile(r"%[0-9A-F]{2}")


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
    base64 and base64url with and without padding, and the value's run inside a longer base64 text at
    each of the three alignments; hex (lower and upper case); percent-encoding (quote, quote_plus,
    lower-case hex); JSON string escaping (UTF-8 and ASCII-only) and that escaped again (JSON shown
    inside a notebook's JSON); HTML/XML entities.
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
    candidates += [("hex", raw.hex()), ("hex", raw.hex().upper())]
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
