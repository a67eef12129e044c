"""The published JSON Schema of an evidence record, generated from the record models.

`docs/evidence-schema.json` is `evidence_schema()` as written by `write_evidence_schema` (a test keeps
them equal). Regenerate it after changing a model:

    python -m meshbook.evidence write-schema [docs/evidence-schema.json]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from meshbook.evidence.payloads import NO_VALUE_KEY_MODELS, NO_VALUE_KEY_SCHEMA
from meshbook.evidence.records import RECORDS

__all__ = ["SCHEMA_PATH", "evidence_schema", "write_evidence_schema"]

SCHEMA_PATH = Path("docs") / "evidence-schema.json"
"""Where the published copy lives, relative to the project root."""


def evidence_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one evidence record, per-kind payload shapes included."""
    generated = RECORDS.json_schema(by_alias=True, mode="validation")
    defs = {**generated.pop("$defs"), "no_value_key": NO_VALUE_KEY_SCHEMA}
    for model in NO_VALUE_KEY_MODELS:  # keys the model does not name hold no `value` key either, at any depth
        defs[model.__name__]["additionalProperties"] = {"$ref": "#/$defs/no_value_key"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:meshbook:evidence:v1",
        "title": "meshbook evidence record",
        "description": (
            "One line of evidence.jsonl. Strings are redacted: known secret values appear only as "
            "‹redacted:label›. A secret_delivery carries a keyed fingerprint, never the value."
        ),
        **generated,
        "$defs": dict(sorted(defs.items())),
    }


def write_evidence_schema(path: Path) -> None:
    """Write `evidence_schema()` as the published `docs/evidence-schema.json`."""
    path.write_text(json.dumps(evidence_schema(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
