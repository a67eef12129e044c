"""Field selectors (`fieldSelector=spec.nodeName=n1,status.phase!=Running`) and the labels each kind supports.

The API server only accepts a few field labels per kind, and answers "field label not supported: X"
for any other; `FIELD_LABELS` is that table as data (from the field label conversion functions and
`ToSelectableFields` of each kind), including where each label reads its value and its value when
the field is unset. `SelectorError` is defined here, the lower of the two selector modules, and is
re-exported by `selectors`, which is the module to import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final


class SelectorError(ValueError):
    """A selector that does not parse or is not supported; the API server answers 400 Bad Request."""


@dataclass(frozen=True)
class FieldLabel:
    """Where a field label reads its value: the first dotted path that is set, else `default`."""

    paths: tuple[str, ...]
    default: str = ""


def _plain(*labels: str) -> dict[str, FieldLabel]:
    return {label: FieldLabel((label,)) for label in labels}


_META: Final = _plain("metadata.name", "metadata.namespace")

FIELD_LABELS: Final[Mapping[str, Mapping[str, FieldLabel]]] = {
    "Pod": {
        **_META,
        **_plain(
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ),
        "spec.hostNetwork": FieldLabel(("spec.hostNetwork",), "false"),
        "spec.host": FieldLabel(("spec.nodeName",)),  # accepted for old clients, means spec.nodeName
    },
    "Event": {
        **_META,
        **_plain(
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "type",
        ),
        "source": FieldLabel(("source.component", "reportingComponent")),
    },
    "Secret": {**_META, **_plain("type")},
    "Namespace": _plain("metadata.name", "status.phase"),
    "Node": {**_plain("metadata.name"), "spec.unschedulable": FieldLabel(("spec.unschedulable",), "false")},
    "ReplicaSet": {**_META, "status.replicas": FieldLabel(("status.replicas",), "0")},
    "ReplicationController": {**_META, "status.replicas": FieldLabel(("status.replicas",), "0")},
    "Job": {**_META, "status.successful": FieldLabel(("status.successful",), "0")},
    "Service": {**_META, **_plain("spec.clusterIP", "spec.type")},
    "CertificateSigningRequest": _plain("metadata.name", "spec.signerName"),
}


def field_labels_for(kind: str) -> Mapping[str, FieldLabel]:
    """The field labels `kind` supports; every other kind supports metadata.name and metadata.namespace."""
    return FIELD_LABELS.get(kind, _META)


@dataclass(frozen=True)
class FieldRequirement:
    """`field` compared with `value` by `operator` ("=", "==" or "!=")."""

    field: str
    operator: str
    value: str

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
        return f"{self.field}{'!=' if self.operator == '!=' else '='}{escaped}"


@dataclass(frozen=True)
class FieldSelector:
    """All requirements must hold; no requirements selects everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    def validate_for_kind(self, kind: str) -> None:
        """Reject labels `kind` does not support, with the API server's message."""
        supported = field_labels_for(kind)
        for requirement in self.requirements:
            if requirement.field not in supported:
                raise SelectorError(f"field label not supported: {requirement.field}")

    def matches(self, obj: Mapping[str, Any], kind: str | None = None) -> bool:
        """Whether `obj` (of `kind`, else its own `kind` field) satisfies every requirement."""
        labels = field_labels_for(kind or str(obj.get("kind", "")))
        for requirement in self.requirements:
            label = labels.get(requirement.field) or FieldLabel((requirement.field,))
            equal = field_value(obj, label) == requirement.value
            if equal == (requirement.operator == "!="):
                return False
        return True

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def field_value(obj: Mapping[str, Any], label: FieldLabel) -> str:
    """The string the API server compares: booleans as true/false, numbers in decimal."""
    for path in label.paths:
        value: Any = obj
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int | float) and value == int(value):
            return str(int(value))
        if value not in (None, "") and not isinstance(value, Mapping | list):
            return str(value)
    return label.default


def parse_field_selector(text: str) -> FieldSelector:
    """A `fieldSelector` query parameter; empty text selects everything. Values may escape `\\ , =`."""
    requirements: list[FieldRequirement] = []
    for term in sorted(_split_terms(text)):
        if not term:
            continue
        split = _split_term(term)
        if split is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{term}'")
        field, operator, raw = split
        requirements.append(FieldRequirement(field, operator, _unescape(raw)))
    return FieldSelector(tuple(requirements))


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not escaped by a backslash."""
    if not text:
        return []
    terms: list[str] = []
    start, escaped = 0, False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            terms.append(text[start:index])
            start = index + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    """At the first operator: `!=` and `==` win over `=` at the same position."""
    for index in range(len(term)):
        for operator in ("!=", "==", "="):
            if term.startswith(operator, index):
                return term[:index], operator, term[index + len(operator) :]
    return None


def _unescape(value: str) -> str:
    result: list[str] = []
    escaped = False
    for char in value:
        if escaped:
            if char not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{char}")
            result.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",=":
            raise SelectorError(f"invalid field selector: unescaped character in value: {char}")
        else:
            result.append(char)
    if escaped:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(result)
