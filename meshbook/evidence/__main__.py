"""`python -m meshbook.evidence write-schema [PATH]`: regenerate the published evidence schema from the models."""

from __future__ import annotations

import sys
from pathlib import Path

from meshbook.evidence.schema import SCHEMA_PATH, write_evidence_schema


def main(argv: list[str]) -> int:
    """Write the schema (default `docs/evidence-schema.json`, run from the project root); 2 on bad usage."""
    if not argv or argv[0] != "write-schema" or len(argv) > 2:
        print("usage: python -m meshbook.evidence write-schema [PATH]", file=sys.stderr)
        return 2
    path = Path(argv[1]) if len(argv) == 2 else SCHEMA_PATH
    write_evidence_schema(path)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
