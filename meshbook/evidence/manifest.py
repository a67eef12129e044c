"""manifest.json: what a finished run directory holds, so an auditor can tell it was not changed since.

`write_manifest` records the sha256 and size of every file under the run directory (executed notebooks,
evidence.jsonl, summary.json, the reports, markers; everything but manifest.json itself and the transient
`RUNNING` marker), with the run's parameters (redacted once more; meshbook refuses secret-looking
parameters anyway), the cluster identity, tool and chart versions, start and end, the outcome and the
leak scan's findings (classes and places, never values) and its scope (`leak_scan`: the secret classes
with the number of values in each, the encodings sought, files read). `verify_manifest` recomputes the hashes and lists
every modified, missing and added file. A symlink is recorded by its target, never followed.

The manifest is not signed: it detects accidental or casual changes. To detect deliberate tampering,
keep its sha256 (or a signature of it) somewhere the run directory's writers cannot reach.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from meshbook.evidence.redaction import default_redactor

__all__ = ["MANIFEST_NAME", "MANIFEST_SCHEMA", "file_entries", "read_manifest", "verify_manifest", "write_manifest"]

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = "meshbook.manifest/v1"
EXCLUDED = frozenset({MANIFEST_NAME, "RUNNING"})
_CHUNK = 1024 * 1024


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _excluded(relative: str) -> bool:
    return relative in EXCLUDED or Path(relative).name.startswith(f".{MANIFEST_NAME}.")


def file_entries(run_dir: Path) -> dict[str, dict[str, Any]]:
    """relative POSIX path -> {sha256, size} (or {symlink, sha256} for a link) of every file in run_dir."""
    run_dir = Path(run_dir)
    entries: dict[str, dict[str, Any]] = {}
    for root, dirs, files in os.walk(run_dir, followlinks=False):
        base = Path(root)
        dirs.sort()
        links = [d for d in dirs if (base / d).is_symlink()]
        for name in sorted([*files, *links]):
            path = base / name
            relative = path.relative_to(run_dir).as_posix()
            if _excluded(relative):
                continue
            if path.is_symlink():
                target = os.readlink(path)
                entries[relative] = {"symlink": target, "sha256": hashlib.sha256(target.encode()).hexdigest()}
            elif path.is_file():
                entries[relative] = {"sha256": _sha256_file(path), "size": path.stat().st_size}
    return dict(sorted(entries.items()))


def _plain(value: Any, where: str) -> Any:
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, default=str)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"manifest {where}: not JSON-serialisable ({exc})") from None
    return json.loads(text)


def write_manifest(
    run_dir: Path,
    *,
    params: dict[str, Any],
    cluster: dict[str, Any],
    versions: dict[str, Any],
    started_at: str,
    ended_at: str,
    outcome: str,
    leaks: list[dict[str, Any]],
    leak_scan: dict[str, Any] | None = None,
) -> Path:
    """Write `run_dir/manifest.json` (atomically) and return its path; call it last, after the reports."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: not a directory")
    redactor = default_redactor()
    manifest: dict[str, Any] = {
        "schema": MANIFEST_SCHEMA,
        "run_id": run_dir.name,
        "started_at": started_at,
        "ended_at": ended_at,
        "outcome": outcome,
        "params": redactor.redact_obj(_plain(params, "params")),
        "cluster": redactor.redact_obj(_plain(cluster, "cluster")),
        "versions": redactor.redact_obj(_plain(versions, "versions")),
        "leaks": redactor.redact_obj(_plain(leaks, "leaks")),
    }
    if leak_scan is not None:  # a run always gives it: the scope of the findings just above
        manifest["leak_scan"] = redactor.redact_obj(_plain(leak_scan, "leak_scan"))
    manifest["files"] = file_entries(run_dir)
    path = run_dir / MANIFEST_NAME
    tmp = run_dir / f".{MANIFEST_NAME}.{os.getpid()}.tmp"
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The manifest as written; ValueError when it is missing or not a meshbook manifest."""
    path = Path(run_dir) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: missing (the run did not finish, or its manifest was removed)") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != MANIFEST_SCHEMA or not isinstance(data.get("files"), dict):
        raise ValueError(f"{path}: not a {MANIFEST_SCHEMA} manifest")
    return data


def verify_manifest(run_dir: Path) -> list[str]:
    """Every difference between run_dir and its manifest, one line each; empty when intact.

    Lines read `modified: PATH (sha256 was X, now Y)`, `missing: PATH` or `added: PATH`, sorted by
    path; a missing or unreadable manifest is one line saying so.
    """
    run_dir = Path(run_dir)
    try:
        manifest = read_manifest(run_dir)
    except ValueError as exc:
        return [f"manifest: {exc}"]
    recorded: Mapping[str, Any] = manifest["files"]
    current = file_entries(run_dir)
    problems: list[tuple[str, str]] = []
    for relative in sorted(set(recorded) | set(current)):
        was, now = recorded.get(relative), current.get(relative)
        if now is None:
            problems.append((relative, f"missing: {relative}"))
        elif was is None:
            problems.append((relative, f"added: {relative}"))
        elif not isinstance(was, Mapping) or was.get("sha256") != now.get("sha256"):
            before = str(was.get("sha256"))[:12] if isinstance(was, Mapping) else "?"
            problems.append((relative, f"modified: {relative} (sha256 was {before}…, now {now['sha256'][:12]}…)"))
        elif was.get("symlink") != now.get("symlink"):
            problems.append((relative, f"modified: {relative} (symlink target changed)"))
    return [text for _, text in problems]
