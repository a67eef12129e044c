"""Field trees of the built-in kinds, from the kubernetes client's generated models (the same API).

Decoding a request into the Go types is what tells kube-apiserver a field is unknown (and drops it) or
of the wrong JSON type; the sandbox walks these trees instead. A model's fields become a structural
schema here (`model_schema`), nested models referenced lazily by name so recursive types stay finite.
`http/openapi/schemas.py` serves its documents from the same models.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from meshbook.sandbox.apiserver.validation.client_models import models

MODEL_PREFIX = re.compile(r"^(?P<group>(?:[A-Z][a-z]+)*)V\d+(?:(?:alpha|beta)\d+)?(?=[A-Z])")
_LIST = re.compile(r"^(?:List\[(.+)\]|list\[(.+)\])$")
_DICT = re.compile(r"^(?:Dict\[str, (.+)\]|dict\(str, (.+)\))$")

#: Model type text -> (schema keywords the walker checks, Go type named in decode errors). Strings
#: are not type-checked: resource.Quantity fields are strings in the models but take numbers too.
_PRIMITIVES: dict[str, tuple[dict[str, Any], str]] = {
    "str": ({}, "string"),
    "int": ({"type": "integer"}, "int32"),
    "float": ({"type": "number"}, "float64"),
    "bool": ({"type": "boolean"}, "bool"),
    "bytes": ({}, "[]uint8"),
    "datetime": ({}, "v1.Time"),
    "date": ({}, "v1.Time"),
    "object": ({"x-kubernetes-preserve-unknown-fields": True}, "interface {}"),  # JSON, RawExtension, fieldsV1
}
_INT64_FIELDS = re.compile(r"(Seconds|Generation|generation|Bytes|Limit)$")


def go_type(model_name: str) -> str:
    """The Go type name of a client model class: V1PodSpec -> PodSpec, CoreV1Event -> Event."""
    return MODEL_PREFIX.sub("", model_name)


def model_for(group: str, version: str, kind: str) -> str | None:
    """The client model class of a built-in kind, e.g. ('', 'v1', 'Event') -> CoreV1Event."""
    ver = version[:1].upper() + version[1:]
    prefix = (group.split(".")[0] or "core").capitalize()
    for name in (f"{prefix}{ver}{kind}", f"{ver}{kind}"):
        if isinstance(getattr(models, name, None), type):
            return name
    return None


@functools.cache
def model_schema(model_name: str) -> dict[str, Any]:
    """A structural schema of a model: its JSON fields with their types; nested models as `$model`."""
    cls = getattr(models, model_name)
    properties = {
        cls.attribute_map[attr]: field_schema(type_text, cls.attribute_map[attr])
        for attr, type_text in cls.openapi_types.items()
    }
    return {"type": "object", "properties": properties, "x-go-name": go_type(model_name)}


def field_schema(type_text: str, json_name: str = "") -> dict[str, Any]:
    if type_text in _PRIMITIVES:
        keywords, go = _PRIMITIVES[type_text]
        if go == "int32" and _INT64_FIELDS.search(json_name):
            go = "int64"
        return {**keywords, "x-go-type": go}
    if m := _LIST.match(type_text):
        items = field_schema(m[1] or m[2])
        return {"type": "array", "items": items, "x-go-type": "[]" + items["x-go-type"]}
    if m := _DICT.match(type_text):
        values = field_schema(m[1] or m[2])
        return {"type": "object", "additionalProperties": values, "x-go-type": "map[string]" + values["x-go-type"]}
    return {"$model": type_text, "x-go-type": "v1." + go_type(type_text)}
