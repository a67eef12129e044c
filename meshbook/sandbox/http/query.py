"""Query parameters read as kube-apiserver's parameter codec reads them, and Warning response headers.

A value that does not parse is a 400 Status with Go's strconv wording, the way the API server's
conversion of url.Values into ListOptions or DeleteOptions fails, never a 500.
"""

from __future__ import annotations

from collections.abc import Mapping

from meshbook.sandbox.apiserver.verbs import bad_request

_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def query_int(query: Mapping[str, str], name: str) -> int | None:
    """An integer parameter (strconv.ParseInt); absent or empty is None."""
    text = query.get(name, "")
    if text == "":
        return None
    try:
        return int(text, 10) if text.lstrip("+-").isdigit() else int("x")
    except ValueError:
        raise bad_request(f'strconv.ParseInt: parsing "{text}": invalid syntax') from None


def query_bool(query: Mapping[str, str], name: str) -> bool:
    """A boolean parameter (strconv.ParseBool); absent or empty is false."""
    text = query.get(name, "")
    if text == "" or text in _FALSE:
        return False
    if text in _TRUE:
        return True
    raise bad_request(f'strconv.ParseBool: parsing "{text}": invalid syntax')


def warning_header(text: str) -> str:
    """RFC 7234 warning value as k8s.io/apiserver writes it: code 299, agent "-", the text quoted."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{escaped}"'
