"""The Bank-Vaults secret injector's reference syntax, shared by vault-env and the webhook.

A value is a reference when it is `vault:PATH#KEY[#VERSION]` (`>>vault:` too) or holds inline
`${vault:PATH#KEY}` pieces. KEY is a data key, or a Go template with the delimiters `${` and `}` run
over the secret's data (`#${.AWS_SECRET_ACCESS_KEY}`, `#${.user}:${.password | upper}`), as the
injector of webhook v1.23 (bank-vaults/internal) does. Upstream templates have all of Sprig; the
sandbox knows the functions in `FUNCTIONS` and names any other it meets. Messages are the injector's
own and never hold a value.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from typing import Any

# The injector's inlineMutationRegex: `${vault:...}`, a template key's closing brace included.
INLINE = re.compile(r"\$\{(>{0,2}vault:.*?#*\}?)\}")
LEFT, RIGHT = "${", "}"

# path, version ("-1": latest) -> the secret's data (KV v2: its `data`), or None when there is none
Reader = Callable[[str, str], Mapping[str, Any] | None]


class InjectionError(Exception):
    """A reference the injector cannot resolve; the text is the injector's error (no values)."""


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


FUNCTIONS: dict[str, Callable[[str], str]] = {
    "upper": str.upper,
    "lower": str.lower,
    "trim": str.strip,
    "title": str.title,
    "quote": _quote,
    "squote": lambda text: f"'{text}'",
    "b64enc": lambda text: base64.b64encode(text.encode()).decode(),
    "b64dec": lambda text: base64.b64decode(text.encode()).decode(errors="replace"),
}


def is_reference(value: str) -> bool:
    """What makes the webhook mutate: a `vault:` value or an inline `${vault:...}`."""
    return value.startswith(("vault:", ">>vault:")) or INLINE.search(value) is not None


def _field(data: Mapping[str, Any], path: str) -> str:
    """`.a.b` over the data; a missing key prints as Go's text/template prints a missing map key."""
    node: Any = data
    for part in path.strip(".").split("."):
        if not part:
            continue
        if not isinstance(node, Mapping) or part not in node:
            return "<no value>"
        node = node[part]
    return node if isinstance(node, str) else str(node)


def _pipeline(action: str, data: Mapping[str, Any]) -> str:
    """One `${ ... }` action: `.KEY`, `.KEY | fn | fn`, `fn .KEY` or a quoted literal."""
    stages = [stage.strip() for stage in action.split("|")]
    value: str | None = None
    for stage in stages:
        words = stage.split()
        if not words:
            raise InjectionError("template: config:1: missing value for command")
        for word in words:
            if word.startswith("."):
                value = _field(data, word)
            elif word[:1] in ('"', "`") and word[-1:] == word[:1] and len(word) >= 2:
                value = word[1:-1]
            elif word not in FUNCTIONS:
                raise InjectionError(
                    f'template: config:1: function "{word}" not defined '
                    f"(the sandbox's templater knows {', '.join(sorted(FUNCTIONS))})"
                )
        function = next((FUNCTIONS[w] for w in words if w in FUNCTIONS), None)
        if function is not None:
            if value is None:
                raise InjectionError(f"template: config:1: wrong number of args for {words[0]}: want 1 got 0")
            value = function(value)
    return value or ""


def render_template(template: str, data: Mapping[str, Any]) -> str:
    """A template key with `${` `}` delimiters rendered over the secret's data."""
    out: list[str] = []
    rest = template
    while LEFT in rest:
        before, _, after = rest.partition(LEFT)
        action, found, rest = after.partition(RIGHT)
        if not found:
            raise InjectionError("template: config:1: unclosed action")
        out.append(before)
        out.append(_pipeline(action, data))
    out.append(rest)
    return "".join(out)


def _is_template(key: str) -> bool:
    return LEFT in key and RIGHT in key


def resolve(reference: str, read: Reader) -> str:
    """The value of one `vault:PATH#KEY[#VERSION]` reference (without `${ }` around it)."""
    path = reference.removeprefix(">>").removeprefix("vault:")
    parts = path.split("#", 2)
    if len(parts) < 2:
        raise InjectionError("secret data key or template not defined")
    path, key = parts[0], parts[1]
    version = parts[2] if len(parts) == 3 else "-1"
    data = read(path, version)
    if data is None:
        raise InjectionError(f"path not found: {path}")
    if _is_template(key):
        try:
            return render_template(key, data)
        except InjectionError as exc:
            raise InjectionError(
                f"failed to interpolate template key with vault data: {key}: error parsing template: {exc}"
            ) from None
    if key not in data:
        raise InjectionError(f"key '{key}' not found under path: {path}")
    value = data[key]
    return value if isinstance(value, str) else str(value)


def inject(values: Mapping[str, str], read: Reader) -> dict[str, str]:
    """Every value with its references replaced (others unchanged), as GetDataFromVault returns them."""
    out: dict[str, str] = {}
    for name, value in values.items():
        if INLINE.search(value):
            out[name] = INLINE.sub(lambda match: resolve(match[1], read), value)
        elif value.startswith(("vault:", ">>vault:")):
            out[name] = resolve(value, read)
        else:
            out[name] = value
    return out


def inject_from_paths(paths: str, read: Reader) -> dict[str, str]:
    """`VAULT_ENV_FROM_PATH`: every key of each comma-separated `PATH[#VERSION]` becomes a variable."""
    out: dict[str, str] = {}
    for entry in (p.strip() for p in paths.split(",") if p.strip()):
        path, _, version = entry.partition("#")
        data = read(path, version or "-1")
        if data is None:
            raise InjectionError(f"path not found: {path}")
        out.update({key: value if isinstance(value, str) else str(value) for key, value in data.items()})
    return out
