"""The topology picture of one notebook as inline SVG: namespaces, pods, sidecars and the two calls that matter.

The state shown is the cluster as last observed when the notebook ended: for every workload, the pods of
its latest `pod_state` check (in this notebook or an earlier one of the run). Two kinds of arrows carry a
verdict taken from the notebook's `secret_delivery` evidence, coloured green (worked), red (failed) or
grey (not exercised), with the reason in an SVG `<title>` (shown on hover):

- kube-apiserver -> the vault-secrets-webhook (did admission mutate the app's pod?);
- each app container that should receive the secret -> Vault.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from markupsafe import Markup

from meshbook.evidence import RecordOutcome
from meshbook.report.load import delivery_rows, pod_rows, policy_rows, printable
from meshbook.report.rundir import RunData

__all__ = ["Arrow", "Topology", "topology", "topology_svg"]

Row = dict[str, Any]

WEBHOOK = "vault-secrets-webhook"
MUTATION_MARK = "copy-vault-env"  # the init container the webhook adds to a pod it mutates
COLOURS = {"ok": "#1a7f37", "fail": "#cf222e", "unknown": "#8c959f"}
_MUTATION_FAILED = re.compile(r"did not mutate|not mutated", re.IGNORECASE)
_ID_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")

NS_W, GAP, POD_H, HEAD, PAD, TOP = 270, 130, 30, 50, 10, 40
API_W, API_H = 150, 56
LEGEND_W = 720


@dataclass
class Namespace:
    name: str
    injection: bool | None = None
    mtls: str = ""
    pods: list[Row] = field(default_factory=list)


@dataclass(frozen=True)
class Arrow:
    """A call between two boxes; `verdict` is ok, fail or unknown; `reason` becomes the SVG title."""

    source: str  # "kube-apiserver" or namespace/pod
    target: str  # namespace/pod, or a namespace
    label: str
    verdict: str
    reason: str


@dataclass
class Topology:
    notebook: str
    namespaces: list[Namespace]
    arrows: list[Arrow]


def _order(run: RunData) -> dict[str, int]:
    names = [n.runbook for n in run.notebooks]
    return {name: i for i, name in enumerate(names)}


def _upto(rows: Sequence[Row], run: RunData, notebook: str) -> list[Row]:
    order = _order(run)
    limit = order.get(notebook, len(order))
    return [r for r in rows if order.get(str(r["notebook"]), len(order)) <= limit]


def _latest_pods(rows: Sequence[Row]) -> list[Row]:
    """For each workload, the pods of its latest check (same notebook and step as its newest record)."""
    newest: dict[tuple[str, str], Row] = {}
    for row in rows:
        key = (str(row["namespace"]), str(row["workload"]))
        if key not in newest or row["seq"] > newest[key]["seq"]:
            newest[key] = row
    keep = []
    for row in rows:
        last = newest[(str(row["namespace"]), str(row["workload"]))]
        if row["notebook"] == last["notebook"] and row["step"] == last["step"]:
            keep.append(row)
    latest_per_pod: dict[tuple[str, str], Row] = {}
    for row in keep:
        latest_per_pod[(str(row["namespace"]), str(row["pod"]))] = row
    return sorted(latest_per_pod.values(), key=lambda r: (str(r["workload"]), str(r["pod"])))


def _mtls_by_namespace(run: RunData, notebook: str) -> tuple[str, dict[str, str]]:
    """(mesh-wide mode, namespace -> mode from a namespace-wide policy) as the run left them."""
    mesh, per_ns = "", {}
    for row in _upto(policy_rows(run), run, notebook):
        subject = str(row["subject"])
        namespace, _, name = subject.partition("/")
        mode = row["mode"] or row["expected_mode"]
        if row["outcome"] == RecordOutcome.SKIP or not mode:
            continue
        if row["source"] == "observed" and name == "default" and row["expected_mode"]:
            mesh = str(mode)  # the root namespace's default policy
        elif row["source"] == "applied" and "mesh" in str(row["deciding_object"]):
            mesh = str(mode)  # meshbook's mesh-wide manifest
        elif row["source"] == "applied" and name == "default":
            per_ns[namespace] = str(mode)
    return mesh, per_ns


def _injection(run: RunData, notebook: str) -> dict[str, bool]:
    order = _order(run)
    limit = order.get(notebook, len(order))
    found: dict[str, bool] = {}
    for r in run.records:
        observed = r["observed"] if isinstance(r["observed"], Mapping) else {}
        in_time = order.get(str(r["notebook"]), len(order)) <= limit
        if r["kind"] == "namespace" and in_time and isinstance(observed.get("injection"), bool):
            found[str(r["subject"])] = bool(observed["injection"])
    return found


def topology(run: RunData, notebook: str) -> Topology:
    """The namespaces, pods and verdict arrows to draw for `notebook` (see the module docstring)."""
    pods = _latest_pods(_upto(pod_rows(run), run, notebook))
    mesh, per_ns = _mtls_by_namespace(run, notebook)
    injection = _injection(run, notebook)
    spaces: dict[str, Namespace] = {}
    for pod in pods:
        ns = spaces.setdefault(str(pod["namespace"]), Namespace(str(pod["namespace"])))
        ns.pods.append(pod)
    for ns in spaces.values():
        ns.injection = injection.get(ns.name)
        if ns.injection is None and ns.pods:
            ns.injection = any(bool(p["sidecar"]) for p in ns.pods)  # no namespace record: judge by the pods
        ns.mtls = f"{per_ns[ns.name]} (namespace)" if ns.name in per_ns else (f"{mesh} (mesh)" if mesh else "")
    deliveries = [d for d in delivery_rows(run) if d["notebook"] == notebook]
    latest: dict[str, Row] = {}
    for d in deliveries:
        latest[str(d["subject"])] = d
    vault_ns = next((str(r["subject"]).split("/")[0] for r in run.records if r["kind"] == "vault_status"), "")
    webhook_ns = next((ns.name for ns in spaces.values() if any(p["workload"] == WEBHOOK for p in ns.pods)), "")
    ordered = [n for n in (webhook_ns, vault_ns) if n in spaces]
    ordered += [str(d["namespace"]) for d in latest.values() if d["namespace"] in spaces]
    ordered += sorted(spaces)
    namespaces = [spaces[n] for n in dict.fromkeys(ordered)]
    arrows: list[Arrow] = []
    if webhook_ns:
        target = next(f"{webhook_ns}/{p['pod']}" for p in spaces[webhook_ns].pods if p["workload"] == WEBHOOK)
        failed = [d for d in latest.values() if _MUTATION_FAILED.search(str(d["reason"]))]
        app_keys = {(str(d["namespace"]), str(d["workload"])) for d in latest.values()}
        mutated = [
            p
            for p in pods
            if (str(p["namespace"]), str(p["workload"])) in app_keys and MUTATION_MARK in p["init_containers"]
        ]
        if failed:
            arrow = Arrow("kube-apiserver", target, "admission", "fail", str(failed[0]["reason"]))
        elif any(d["delivered"] for d in latest.values()):
            reason = "the webhook mutated the app's pod: vault-env delivered the secret"
            arrow = Arrow("kube-apiserver", target, "admission", "ok", reason)
        elif mutated:
            reason = f"the webhook mutated the app's pod: {mutated[0]['pod']} has the {MUTATION_MARK} init container"
            arrow = Arrow("kube-apiserver", target, "admission", "ok", reason)
        else:
            reason = "no secret delivery was checked in this notebook"
            arrow = Arrow("kube-apiserver", target, "admission", "unknown", reason)
        arrows.append(arrow)
    vault_target = vault_ns
    if vault_ns in spaces:
        vault_pod = next((p for p in spaces[vault_ns].pods if p["workload"] == "vault"), None)
        vault_target = f"{vault_ns}/{vault_pod['pod']}" if vault_pod else vault_ns
    for d in latest.values():
        app_ns = str(d["namespace"])
        app_pod = next((p for p in spaces.get(app_ns, Namespace(app_ns)).pods if p["workload"] == d["workload"]), None)
        if app_pod is None or not vault_target:
            continue
        ok = bool(d["delivered"]) and d["matches_vault"] is not False
        reason = str(d["reason"]) or (
            "secret delivered; matches Vault" if ok else "secret delivered but does not match Vault"
        )
        arrows.append(
            Arrow(f"{app_ns}/{app_pod['pod']}", vault_target, str(d["container"]), "ok" if ok else "fail", reason)
        )
    return Topology(notebook, namespaces, arrows)


# -- drawing -------------------------------------------------------------------------------------------------


def _e(text: Any) -> str:
    return escape(printable(text), quote=True)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _arrow_markers(prefix: str) -> str:
    parts = []
    for verdict, colour in COLOURS.items():
        parts.append(
            f'<marker id="{prefix}-{verdict}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
            f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
        )
    return "<defs>" + "".join(parts) + "</defs>"


def topology_svg(topo: Topology, prefix: str) -> Markup:
    """Inline SVG (no external references); `prefix` keeps marker ids unique within one HTML page.

    Markup because it is safe to place in a page as is: every text and title taken from evidence is
    escaped here, attributes hold only numbers, fixed words and the checked `prefix`.
    """
    if not _ID_PREFIX.fullmatch(prefix):
        raise ValueError(
            f"topology_svg prefix {prefix!r}: expected an id prefix (a letter, then letters, digits, _ or -)"
        )
    cols = len(topo.namespaces)
    tallest = max((len(ns.pods) for ns in topo.namespaces), default=0)
    ns_h = HEAD + max(tallest, 1) * (POD_H + 6) + PAD
    width = max(20 + API_W + GAP + cols * NS_W + max(cols - 1, 0) * GAP + 20, LEGEND_W)
    height = TOP + ns_h + 70
    out: list[str] = [
        f'<svg class="topology" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{_e("topology after " + topo.notebook)}">',
        f"<title>{_e('Topology after ' + topo.notebook)}</title>",
        _arrow_markers(prefix),
    ]
    anchors: dict[str, tuple[float, float, float]] = {}  # name -> (left x, right x, centre y)
    api_y = TOP + HEAD
    out.append(
        f'<g class="apiserver"><title>kube-apiserver: outside the mesh</title>'
        f'<rect x="20" y="{api_y}" width="{API_W}" height="{API_H}" rx="8" class="box api"/>'
        f'<text x="{20 + API_W / 2}" y="{api_y + 33}" text-anchor="middle" class="label">kube-apiserver</text></g>'
    )
    anchors["kube-apiserver"] = (20, 20 + API_W, api_y + API_H / 2)
    for i, ns in enumerate(topo.namespaces):
        x = 20 + API_W + GAP + i * (NS_W + GAP)
        facts = [{True: "injection on", False: "injection off", None: ""}[ns.injection]]
        facts.append(f"mTLS {ns.mtls}" if ns.mtls else "")
        sub = " · ".join(f for f in facts if f) or "no policy or injection recorded"
        out.append(
            f'<g class="namespace"><title>{_e(f"namespace {ns.name}: {sub}")}</title>'
            f'<rect x="{x}" y="{TOP}" width="{NS_W}" height="{ns_h}" rx="10" class="box ns"/>'
            f'<text x="{x + 12}" y="{TOP + 20}" class="label">{_e(_short("namespace " + ns.name, 34))}</text>'
            f'<text x="{x + 12}" y="{TOP + 38}" class="small">{_e(_short(sub, 42))}</text></g>'
        )
        anchors[ns.name] = (x, x + NS_W, TOP + ns_h / 2)
        for j, pod in enumerate(ns.pods):
            y = TOP + HEAD + j * (POD_H + 6)
            out.append(_pod(x, y, ns.name, pod))
            anchors[f"{ns.name}/{pod['pod']}"] = (x + 8, x + NS_W - 8, y + POD_H / 2)
    offsets: dict[str, int] = {}
    for arrow in topo.arrows:
        if arrow.source not in anchors or arrow.target not in anchors:
            continue
        n = offsets.get(arrow.source, 0)
        offsets[arrow.source] = n + 1
        out.append(_arrow(arrow, anchors[arrow.source], anchors[arrow.target], n * 14 - 7, prefix))
    out.append(_legend(height - 26))
    out.append("</svg>")
    return Markup("".join(out))


def _pod(x: float, y: float, namespace: str, pod: Row) -> str:
    verdict = {RecordOutcome.PASS: "ok", RecordOutcome.FAIL: "fail"}.get(pod["outcome"], "unknown")
    sidecar = bool(pod["sidecar"])
    title = (
        f"pod {namespace}/{pod['pod']}: READY {pod['ready']}"
        + (f" (expected {pod['expected_ready']})" if pod["expected_ready"] else "")
        + f", {pod['status']}, {'istio-proxy sidecar' if sidecar else 'no sidecar'}"
        + (f", restarts {pod['restarts']}" if pod["restarts"] else "")
    )
    marker_x = x + NS_W - 34
    marker = (
        f'<g class="sidecar"><title>istio-proxy sidecar</title><circle cx="{marker_x}" cy="{y + POD_H / 2}" r="8" '
        f'fill="#466bb0"/><text x="{marker_x}" y="{y + POD_H / 2 + 4}" text-anchor="middle" class="proxy">P</text></g>'
        if sidecar
        else f'<g class="no-sidecar"><title>no sidecar</title><circle cx="{marker_x}" cy="{y + POD_H / 2}" r="7" '
        f'fill="none" stroke="#8c959f" stroke-dasharray="2 2"/></g>'
    )
    return (
        f'<g class="pod {verdict}"><title>{_e(title)}</title>'
        f'<rect x="{x + 8}" y="{y}" width="{NS_W - 16}" height="{POD_H}" rx="5" class="podbox" '
        f'stroke="{COLOURS[verdict]}"/>'
        f'<text x="{x + 16}" y="{y + 19}" class="mono">{_e(_short(str(pod["pod"]), 24))}</text>'
        f'<text x="{x + NS_W - 52}" y="{y + 19}" text-anchor="end" class="mono">{_e(pod["ready"])}</text>'
        f"{marker}</g>"
    )


def _arrow(arrow: Arrow, src: tuple[float, float, float], dst: tuple[float, float, float], dy: float, p: str) -> str:
    if src[0] > dst[0]:
        x1, x2 = src[0], dst[1]
    else:
        x1, x2 = src[1], dst[0]
    y1, y2 = src[2] + dy, dst[2] + dy / 2
    colour = COLOURS[arrow.verdict]
    word = {"ok": "worked", "fail": "FAILED", "unknown": "not checked"}[arrow.verdict]
    title = f"{arrow.source} → {arrow.target} ({arrow.label}): {word}. {arrow.reason}"
    dash = ' stroke-dasharray="6 4"' if arrow.verdict == "unknown" else ""
    lx = x1 + (x2 - x1) * 0.5
    ly = y1 + (y2 - y1) * 0.5 + (14 if dy > 0 else -6)
    return (
        f'<g class="arrow {arrow.verdict}"><title>{_e(title)}</title>'
        f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="transparent" stroke-width="14"/>'
        f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{colour}" stroke-width="2.5"{dash} '
        f'marker-end="url(#{p}-{arrow.verdict})"/>'
        f'<text x="{lx}" y="{ly}" text-anchor="middle" class="small" style="fill:{colour}">'
        f"{_e(_short(arrow.label, 16))}</text>"
        f"</g>"
    )


def _legend(y: float) -> str:
    items = [("ok", "call worked"), ("fail", "call failed (hover for why)"), ("unknown", "not checked")]
    parts = []
    x = 20.0
    for verdict, text in items:
        parts.append(
            f'<line x1="{x}" y1="{y}" x2="{x + 30}" y2="{y}" stroke="{COLOURS[verdict]}" stroke-width="2.5"/>'
            f'<text x="{x + 38}" y="{y + 4}" class="small">{_e(text)}</text>'
        )
        x += 60 + 7 * len(text)
    parts.append(
        f'<circle cx="{x + 8}" cy="{y}" r="7" fill="#466bb0"/><text x="{x + 22}" y="{y + 4}" class="small">'
        "istio-proxy sidecar</text>"
    )
    return '<g class="legend">' + "".join(parts) + "</g>"
