"""Label and field selectors, parsed and matched the way the API server does for list and watch.

Label selectors come as query strings (`app=web,tier in (a,b),!legacy`) or as the API's LabelSelector
object (matchLabels, matchExpressions); field selectors as `spec.nodeName=n1,status.phase!=Running`,
checked against the table of field labels each kind supports. Error messages follow the API server's
wording (apimachinery's `labels` and `fields` packages), so clients see what a real cluster says, minus
the `<nil>: ` prefix upstream prints for key errors of query-string selectors. The field-selector half
lives in `field_selectors` and is re-exported here, so this is the one module to import.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from meshbook.sandbox.apiserver.field_selectors import (
    FIELD_LABELS,
    FieldLabel,
    FieldRequirement,
    FieldSelector,
    SelectorError,
    parse_field_selector,
)

_NAME_FMT: Final = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_NAME: Final = re.compile(_NAME_FMT)
_VALUE_FMT: Final = f"({_NAME_FMT})?"
_DNS_LABEL: Final = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN_FMT: Final = rf"{_DNS_LABEL}(\.{_DNS_LABEL})*"
_DNS_SUBDOMAIN: Final = re.compile(_DNS_SUBDOMAIN_FMT)
_NAME_MSG: Final = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
    f"character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '{_NAME_FMT}')"
)
_VALUE_MSG: Final = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
    f"regex used for validation is '{_VALUE_FMT}')"
)
_SUBDOMAIN_MSG: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    f"start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    f"'{_DNS_SUBDOMAIN_FMT}')"
)


def label_key_errors(key: str) -> list[str]:
    """What is wrong with `key` as a label key (optional DNS subdomain prefix, '/', name); empty if valid."""
    parts = key.split("/")
    errors: list[str] = []
    if len(parts) > 2:
        return [
            f"a valid label key {_NAME_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            if len(prefix) > 253:
                errors.append("prefix part must be no more than 253 characters")
            if not _DNS_SUBDOMAIN.fullmatch(prefix):
                errors.append(f"prefix part {_SUBDOMAIN_MSG}")
    name = parts[-1]
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part must be no more than 63 characters")
    if not _NAME.fullmatch(name):
        errors.append(f"name part {_NAME_MSG}")
    return errors


def label_value_errors(value: str) -> list[str]:
    """What is wrong with `value` as a label value; empty if valid."""
    errors = ["must be no more than 63 characters"] if len(value) > 63 else []
    if value and not _NAME.fullmatch(value):
        errors.append(_VALUE_MSG)
    return errors


# Operators as apimachinery's `selection` package spells them, and the API object's names for them.
IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS = "in", "notin", "=", "==", "!="
EXISTS, DOES_NOT_EXIST, GREATER_THAN, LESS_THAN = "exists", "!", "gt", "lt"
_BINARY: Final = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)
_API_OPERATORS: Final = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


@dataclass(frozen=True)
class Requirement:
    """One term of a label selector: `key`, an operator from `selection`, and its values (sorted)."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key, "")
        if self.operator in (IN, EQUALS, DOUBLE_EQUALS):
            return present and value in self.values
        if self.operator in (NOT_IN, NOT_EQUALS):
            return not present or value not in self.values
        if self.operator == EXISTS:
            return present
        if self.operator == DOES_NOT_EXIST:
            return not present
        if not present or not _is_int(value):
            return False
        limit = int(self.values[0])
        return int(value) > limit if self.operator == GREATER_THAN else int(value) < limit

    def __str__(self) -> str:
        if self.operator in (EXISTS, DOES_NOT_EXIST):
            return ("!" if self.operator == DOES_NOT_EXIST else "") + self.key
        if self.operator in (IN, NOT_IN):
            return f"{self.key} {self.operator} ({','.join(self.values)})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(self.operator, self.operator)
        return f"{self.key}{symbol}{self.values[0]}"


def _is_int(text: str) -> bool:
    return re.fullmatch(r"[+-]?[0-9]+", text) is not None and -(2**63) <= int(text) < 2**63


def new_requirement(key: str, operator: str, values: Iterable[str]) -> Requirement:
    """A validated requirement; raises SelectorError with the API server's field error wording."""
    vals = sorted(set(values)) if operator in (IN, NOT_IN) else list(values)
    errors = [f'key: Invalid value: "{key}": {"; ".join(e)}' for e in [label_key_errors(key)] if e]
    shown = "[]string{" + ", ".join(_quote(v) for v in vals) + "}"
    if operator in (IN, NOT_IN) and not vals:
        errors.append(f"values: Invalid value: {shown}: for 'in', 'notin' operators, values set can't be empty")
    elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS) and len(vals) != 1:
        errors.append(f"values: Invalid value: {shown}: exact-match compatibility requires one single value")
    elif operator in (EXISTS, DOES_NOT_EXIST) and vals:
        errors.append(f"values: Invalid value: {shown}: values set must be empty for exists and does not exist")
    elif operator in (GREATER_THAN, LESS_THAN):
        if len(vals) != 1:
            errors.append(f"values: Invalid value: {shown}: for 'Gt', 'Lt' operators, exactly one value is required")
        errors.extend(
            f"values[{i}]: Invalid value: {_quote(v)}: for 'Gt', 'Lt' operators, the value must be an integer"
            for i, v in enumerate(vals)
            if not _is_int(v)
        )
    elif operator not in (*_BINARY, EXISTS, DOES_NOT_EXIST):
        supported = ", ".join(_quote(op) for op in (*_BINARY, EXISTS, DOES_NOT_EXIST))
        errors.append(f"operator: Unsupported value: {_quote(operator)}: supported values: {supported}")
    for i, value in enumerate(vals):
        if problems := label_value_errors(value):
            errors.append(f"values[{i}][{key}]: Invalid value: {_quote(value)}: {'; '.join(problems)}")
    if errors:
        raise SelectorError(errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]")
    return Requirement(key, operator, tuple(vals))


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class LabelSelector:
    """All requirements must match; no requirements matches everything, `nothing` matches no object."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    def matches(self, labels: Mapping[str, str]) -> bool:
        return not self.nothing and all(r.matches(labels) for r in self.requirements)

    def empty(self) -> bool:
        """Whether this selects everything (the API's empty selector)."""
        return not self.nothing and not self.requirements

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


EVERYTHING: Final = LabelSelector()
NOTHING: Final = LabelSelector(nothing=True)


def label_selector_from_dict(selector: Mapping[str, Any] | None) -> LabelSelector:
    """The API's LabelSelector object as a selector.

    As in Kubernetes (metav1.LabelSelectorAsSelector): a null selector matches nothing, an empty one
    (`{}`, or no matchLabels and no matchExpressions) matches everything.
    """
    if selector is None:
        return NOTHING
    if not isinstance(selector, Mapping):
        raise SelectorError("a label selector must be an object with matchLabels and/or matchExpressions")
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not isinstance(match_labels, Mapping) or not isinstance(expressions, list):
        raise SelectorError("matchLabels must be an object and matchExpressions a list")
    requirements: list[Requirement] = []
    for key, value in match_labels.items():
        if not isinstance(value, str):
            raise SelectorError(f"matchLabels.{key}: Invalid value: {json.dumps(value)}: must be a string")
        requirements.append(new_requirement(key, EQUALS, [value]))
    for number, expression in enumerate(expressions):
        if not isinstance(expression, Mapping):
            raise SelectorError(f"matchExpressions[{number}]: must be an object with key, operator and values")
        operator = expression.get("operator")
        if operator not in _API_OPERATORS:
            raise SelectorError(f"{_quote(str(operator))} is not a valid label selector operator")
        values = expression.get("values") or []
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise SelectorError(f"matchExpressions[{number}].values: must be a list of strings")
        requirements.append(new_requirement(str(expression.get("key", "")), _API_OPERATORS[operator], values))
    return LabelSelector(tuple(sorted(requirements, key=lambda r: r.key)))


_SPECIAL: Final = "=!(),><"
_TOKENS: Final = {")", ",", "!", "==", "=", ">", "<", "!=", "(", IN, NOT_IN}
_END = "end of string"


def _lex(text: str) -> list[tuple[str, str]]:
    """(kind, literal) pairs: kind is a token such as "(" or "in", "id" for identifiers, "error", "end"."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        if pos >= len(text):
            tokens.append((_END, ""))
            return tokens
        start = pos
        if text[pos] in _SPECIAL:
            best = ""
            while pos < len(text) and text[pos] in _SPECIAL:
                if text[start : pos + 1] in _TOKENS:
                    best = text[start : pos + 1]
                elif best:
                    break
                pos += 1
            if not best:
                tokens.append(("error", f"error expected: keyword found '{text[start:pos]}'"))
            else:
                pos = start + len(best)
                tokens.append((best, best))
            continue
        while pos < len(text) and text[pos] not in _SPECIAL and text[pos] not in " \t\r\n":
            pos += 1
        word = text[start:pos]
        tokens.append((word if word in (IN, NOT_IN) else "id", word))


class _Parser:
    """apimachinery's label selector grammar; in value position `in`/`notin` are plain identifiers."""

    def __init__(self, text: str) -> None:
        self.tokens = _lex(text)
        self.pos = 0

    def peek(self, values: bool = True) -> tuple[str, str]:
        kind, literal = self.tokens[self.pos]
        return ("id" if values and kind in (IN, NOT_IN) else kind), literal

    def take(self, values: bool = True) -> tuple[str, str]:
        token = self.peek(values)
        self.pos += 1
        return token

    def parse(self) -> LabelSelector:
        requirements: list[Requirement] = []
        while True:
            kind, literal = self.peek()
            if kind == _END:
                break
            if kind not in ("id", "!"):
                raise SelectorError(f"found '{literal}', expected: !, identifier, or 'end of string'")
            try:
                requirements.append(self.requirement())
            except SelectorError as exc:
                raise SelectorError(f"unable to parse requirement: {exc}") from None
            kind, literal = self.take()
            if kind == _END:
                break
            if kind != ",":
                raise SelectorError(f"found '{literal}', expected: ',' or 'end of string'")
            kind, literal = self.peek()
            if kind not in ("id", "!"):
                raise SelectorError(f"found '{literal}', expected: identifier after ','")
        return LabelSelector(tuple(sorted(requirements, key=lambda r: r.key)))

    def requirement(self) -> Requirement:
        kind, key = self.take()
        negated = kind == "!"
        if negated:
            kind, key = self.take()
        if kind != "id":
            raise SelectorError(f"found '{key}', expected: identifier")
        if errors := label_key_errors(key):
            raise SelectorError(f'Invalid value: "{key}": {"; ".join(errors)}')
        if negated or self.peek()[0] in (_END, ","):
            return new_requirement(key, DOES_NOT_EXIST if negated else EXISTS, [])
        kind, literal = self.take(values=False)
        operators = {IN: IN, NOT_IN: NOT_IN, "=": EQUALS, "==": DOUBLE_EQUALS, "!=": NOT_EQUALS}
        operator = {**operators, ">": GREATER_THAN, "<": LESS_THAN}.get(kind)
        if operator is None:
            raise SelectorError(f"found '{literal}', expected: {', '.join(_BINARY)}")
        return new_requirement(key, operator, self.set_values() if operator in (IN, NOT_IN) else self.exact_value())

    def exact_value(self) -> list[str]:
        if self.peek()[0] in (_END, ","):
            return [""]
        kind, literal = self.take()
        if kind != "id":
            raise SelectorError(f"found '{literal}', expected: identifier")
        return [literal]

    def set_values(self) -> list[str]:
        kind, literal = self.take()
        if kind != "(":
            raise SelectorError(f"found '{literal}' expected: '('")
        kind, literal = self.peek()
        if kind == ")":
            self.take()
            return [""]
        if kind not in ("id", ","):
            raise SelectorError(f"found '{literal}', expected: ',', ')' or identifier")
        values: list[str] = []
        previous = "("
        while True:
            kind, literal = self.take()
            if kind == "id":
                values.append(literal)
                following, literal = self.peek()
                if following not in (",", ")"):
                    raise SelectorError(f"found '{literal}', expected: ',' or ')'")
            elif kind == ",":
                if previous in ("(", ","):  # an empty value before this comma
                    values.append("")
                if self.peek()[0] == ")":
                    values.append("")
            elif kind == ")" and previous in ("id", ","):
                return values
            else:
                raise SelectorError(f"found '{literal}', expected: ',', or identifier")
            previous = kind


def parse_label_selector(text: str) -> LabelSelector:
    """A `labelSelector` query parameter; empty or blank text selects everything."""
    return _Parser(text).parse()


__all__: Sequence[str] = [
    "EVERYTHING",
    "FIELD_LABELS",
    "NOTHING",
    "FieldLabel",
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "SelectorError",
    "label_key_errors",
    "label_selector_from_dict",
    "label_value_errors",
    "new_requirement",
    "parse_field_selector",
    "parse_label_selector",
]
