"""What a notebook cell shows for a step: tables and the applied YAML, never a Python repr.

A platform engineer reads the executed notebook, not the code: every step a Session runs returns a
`StepResult` that renders as HTML (JupyterLab, `jupyter nbconvert --to html`), Markdown and plain text,
with the objects it changed (kind, name, what happened, resourceVersion before -> after), the command a
person would type today, and the YAML that was applied in a collapsed <details>. Every text is escaped
(object names and reasons come from the cluster), and secret values never reach a display: Secrets'
`data`/`stringData` and the Vault CR's `startupSecrets` data are replaced before any YAML is written.
"""

from __future__ import annotations

import copy
import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from meshbook.kube.apply import AppliedObject
from meshbook.kube.pods import PodRow
from meshbook.manifests import to_yaml

REDACTED = "<redacted>"
"""What a secret value shows as; its key stays, so the reader sees which entries exist."""

CREATED = "created"
CONFIGURED = "configured"
UNCHANGED = "unchanged"
DRY_RUN_DRIFT = "dry-run: drift"
DRY_RUN_IN_SYNC = "dry-run: in sync"
MISSING_NOTHING_TO_DO = "nothing to do (does not exist)"

OBJECT_COLUMNS = ("kind", "namespace/name", "action", "resourceVersion (before -> after)", "detail")
POD_COLUMNS = ("NAME", "READY", "STATUS", "RESTARTS")


# -- secrets never shown ------------------------------------------------------------------------------


def redact_manifest(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `obj` safe to show: Secret values and the Vault CR's startupSecrets data replaced.

    Keys stay (they name what exists, not what it holds); only values are replaced.
    """
    out: dict[str, Any] = copy.deepcopy(dict(obj))
    if out.get("kind") == "Secret":
        for field in ("data", "stringData"):
            if isinstance(out.get(field), Mapping):
                out[field] = {str(key): REDACTED for key in out[field]}
    spec = out.get("spec")
    external = spec.get("externalConfig") if isinstance(spec, Mapping) else None
    startup = external.get("startupSecrets") if isinstance(external, Mapping) else None
    if isinstance(startup, list):
        for entry in startup:
            if isinstance(entry, dict) and "data" in entry:
                entry["data"] = _redact_values(entry["data"])
    annotations = (out.get("metadata") or {}).get("annotations")
    if isinstance(annotations, dict) and "kubectl.kubernetes.io/last-applied-configuration" in annotations:
        annotations["kubectl.kubernetes.io/last-applied-configuration"] = REDACTED  # a copy of everything above
    return out


def _redact_values(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _redact_values(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact_values(item) for item in value]
    return REDACTED


def manifest_yaml(obj: Mapping[str, Any]) -> str:
    """The object as `kubectl get -o yaml` would print it, secret values redacted."""
    return to_yaml([redact_manifest(obj)])


# -- tables ---------------------------------------------------------------------------------------------


def _text(value: object) -> str:
    return "" if value is None else str(value)


def html_table(columns: Sequence[str], rows: Iterable[Sequence[object]], *, css_class: str = "") -> str:
    """An HTML table with every header and cell escaped."""
    cls = f' class="{html.escape(css_class)}"' if css_class else ""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_text(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _markdown_cell(value: object) -> str:
    text = html.escape(_text(value).replace("\\", "\\\\")).replace("|", "\\|").replace("\n", "<br>")
    return text.replace("`", "\\`").replace("*", "\\*").replace("_", "\\_")


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown (GFM) table; cells are HTML-escaped and `|` and emphasis marks are escaped."""
    lines = ["| " + " | ".join(_markdown_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_markdown_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Columns padded as kubectl prints them (for terminals and the text/plain form)."""
    cells = [[_text(c) for c in columns], *[[_text(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def _fence(text: str) -> str:
    """A fence longer than any run of backticks in `text`, so the code block cannot be closed early."""
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


# -- results --------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class ObjectChange:
    """One object a step applied, labelled, or compared: what happened to it and the YAML sent."""

    kind: str
    namespace: str | None
    name: str
    action: str
    resource_version_before: str | None = None
    resource_version_after: str | None = None
    yaml: str = ""
    """What was sent to the API server (secret values already redacted); empty when nothing was."""
    detail: str = ""

    @classmethod
    def applied(cls, result: AppliedObject, manifest: Mapping[str, Any] | None = None) -> ObjectChange:
        """From an apply's result: created (no resourceVersion before), configured, or unchanged."""
        action = UNCHANGED if not result.changed else CREATED if result.resource_version_before is None else CONFIGURED
        return cls(
            result.kind,
            result.namespace,
            result.name,
            action,
            result.resource_version_before,
            result.resource_version_after,
            manifest_yaml(manifest) if manifest is not None else "",
        )

    @classmethod
    def compared(cls, manifest: Mapping[str, Any], drift: Sequence[str]) -> ObjectChange:
        """From a dry-run apply (mode check): in sync, or the paths that would change (never values)."""
        meta = manifest.get("metadata") or {}
        return cls(
            str(manifest.get("kind")),
            meta.get("namespace"),
            str(meta.get("name")),
            DRY_RUN_DRIFT if drift else DRY_RUN_IN_SYNC,
            yaml=manifest_yaml(manifest),
            detail="; ".join(drift),
        )

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def versions(self) -> str:
        if self.resource_version_after is None:
            return ""
        return f"{self.resource_version_before or '(new)'} -> {self.resource_version_after}"

    def row(self) -> tuple[str, str, str, str, str]:
        return (self.kind, self.ref, self.action, self.versions, self.detail)

    def __repr__(self) -> str:
        return f"{self.kind} {self.ref}: {self.action}" + (f" ({self.versions})" if self.versions else "")


def pod_line(row: PodRow) -> tuple[str, str, str, int]:
    """A pod as `kubectl get pods` lists it: NAME READY STATUS RESTARTS."""
    return (row.pod, row.ready, row.status, row.restarts)


@dataclass(frozen=True, repr=False)
class StepResult:
    """What one step did, for the reader of the notebook: a summary, tables, commands and YAML.

    `today` holds the commands a person would type today for the same change (the guide's own, with
    Backyards, sit in the markdown above the cell); `commands_run` the ones meshbook actually ran.
    """

    step: str
    summary: str
    objects: tuple[ObjectChange, ...] = ()
    pods: tuple[tuple[str, str, str, int], ...] = ()
    facts: tuple[tuple[str, str], ...] = ()
    today: tuple[str, ...] = ()
    commands_run: tuple[str, ...] = ()
    pods_title: str = ""

    @property
    def changed(self) -> bool:
        return any(o.action in (CREATED, CONFIGURED) for o in self.objects) or bool(self.commands_run)

    @property
    def _today_title(self) -> str:
        return "today's command:" if len(self.today) == 1 else "today's commands:"

    # -- the three forms Jupyter asks for ----------------------------------------------------------------

    def _repr_html_(self) -> str:
        e = html.escape
        parts = [f'<div class="meshbook-step"><p><strong>{e(self.step)}</strong>: {e(self.summary)}</p>']
        if self.facts:
            parts.append(html_table(("setting", "value"), self.facts, css_class="meshbook-facts"))
        if self.objects:
            rows = [o.row() for o in self.objects]
            parts.append(html_table(OBJECT_COLUMNS, rows, css_class="meshbook-objects"))
        if self.pods:
            if self.pods_title:
                parts.append(f"<p>{e(self.pods_title)}</p>")
            parts.append(html_table(POD_COLUMNS, self.pods, css_class="meshbook-pods"))
        if self.commands_run:
            parts.append("<p>commands run:</p><pre>" + e("\n".join(self.commands_run)) + "</pre>")
        if self.today:
            parts.append(f"<p>{e(self._today_title)}</p><pre>" + e("\n".join(self.today)) + "</pre>")
        for change in self.objects:
            if change.yaml:
                parts.append(
                    f'<details class="meshbook-yaml"><summary>YAML: {e(change.kind)} {e(change.ref)}</summary>'
                    f'<pre class="meshbook-yaml">{e(change.yaml)}</pre></details>'
                )
        parts.append("</div>")
        return "".join(parts)

    def _repr_markdown_(self) -> str:
        parts = [f"**{_markdown_cell(self.step)}**: {_markdown_cell(self.summary)}"]
        if self.facts:
            parts.append(markdown_table(("setting", "value"), self.facts))
        if self.objects:
            parts.append(markdown_table(OBJECT_COLUMNS, [o.row() for o in self.objects]))
        if self.pods:
            if self.pods_title:
                parts.append(_markdown_cell(self.pods_title))
            parts.append(markdown_table(POD_COLUMNS, self.pods))
        for title, commands in (("commands run:", self.commands_run), (self._today_title, self.today)):
            if commands:
                text = "\n".join(commands)
                fence = _fence(text)
                parts.append(f"{title}\n\n{fence}shell\n{text}\n{fence}")
        for change in self.objects:
            if change.yaml:
                fence = _fence(change.yaml)
                summary = html.escape(f"YAML: {change.kind} {change.ref}")
                parts.append(
                    f"<details><summary>{summary}</summary>\n\n{fence}yaml\n{change.yaml.rstrip()}\n{fence}\n\n</details>"
                )
        return "\n\n".join(parts)

    def __repr__(self) -> str:
        parts = [f"{self.step}: {self.summary}"]
        if self.facts:
            parts.append(text_table(("SETTING", "VALUE"), self.facts))
        if self.objects:
            parts.append(text_table([c.upper() for c in OBJECT_COLUMNS], [o.row() for o in self.objects]))
        if self.pods:
            parts.append(text_table(POD_COLUMNS, self.pods))
        if self.commands_run:
            parts.append("commands run:\n" + "\n".join(f"  {c}" for c in self.commands_run))
        if self.today:
            parts.append(f"{self._today_title}\n" + "\n".join(f"  {c}" for c in self.today))
        return "\n".join(parts)

    __str__ = __repr__
