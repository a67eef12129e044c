"""Cell values of server-side tables, computed as the Kubernetes API server computes them.

`columns.py` holds which columns each kind has; this module holds the rules behind the cells that are
more than a field lookup: ages (`duration.HumanDuration`), label selectors, a pod's RESTARTS cell,
service, endpoint and event summaries. A pod's READY/STATUS/RESTARTS rules live in `meshbook.podstatus`,
shared with the library, so the sandbox's `kubectl get pods` and meshbook's pod tables agree. Functions
shaped `(obj, now) -> cell` are columns as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from meshbook.podstatus import PodSummary, dig, parse_time

Cell = str | int | float | bool | None
Obj = Mapping[str, Any]
Value = Callable[[Obj, datetime], Cell]


def human_duration(delta: timedelta) -> str:
    """`k8s.io/apimachinery/pkg/util/duration.HumanDuration`: about 2-3 significant figures."""
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    seconds = abs(micros) // 1_000_000 * (1 if micros >= 0 else -1)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m" if seconds % 60 == 0 else f"{minutes}m{seconds % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    days = hours // 24
    if hours < 24 * 365 * 2:
        return f"{days}d"
    if hours < 24 * 365 * 8:
        return f"{days // 365}y" if days % 365 == 0 else f"{days // 365}y{days % 365}d"
    return f"{days // 365}y"


def age(timestamp: Any, now: datetime) -> str:
    """`translateTimestampSince`: the age of a timestamp, `<unknown>` when it is unset."""
    when = parse_time(timestamp)
    if when is None:
        return "<unknown>"
    return human_duration((now if now.tzinfo else now.replace(tzinfo=UTC)) - when)


def created_at(obj: Mapping[str, Any]) -> str:
    """The default table's `Created At` cell: the creation time in RFC 3339, UTC."""
    when = parse_time(dig(obj, "metadata", "creationTimestamp")) or datetime(1, 1, 1, tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_labels(labels: Any) -> str:
    """`labels.FormatLabels`: `k=v,...` sorted by key, `<none>` when empty."""
    if not labels:
        return "<none>"
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def selector_string(selector: Any) -> str:
    """A LabelSelector as `LabelSelectorAsSelector(...).String()` prints it (`<invalid>` if invalid)."""
    if not isinstance(selector, Mapping):
        return ""
    requirements = [(key, f"{key}={value}") for key, value in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        key, values = expr.get("key", ""), ",".join(sorted(expr.get("values") or []))
        text = {
            "In": f"{key} in ({values})",
            "NotIn": f"{key} notin ({values})",
            "Exists": key,
            "DoesNotExist": f"!{key}",
        }.get(expr.get("operator", ""))
        if text is None:
            return "<invalid>"
        requirements.append((key, text))
    return ",".join(text for _, text in sorted(requirements, key=lambda item: item[0]))


def format_selector(selector: Any) -> str:
    """`metav1.FormatLabelSelector`: like `selector_string`, `<none>` when it selects everything."""
    return selector_string(selector) or "<none>"


def containers_cells(obj: Mapping[str, Any], which: str = "name") -> str:
    """Names or images of the pod template's containers, comma-separated (`layoutContainerCells`)."""
    containers = dig(obj, "spec", "template", "spec", "containers") or []
    return ",".join(str(container.get(which, "")) for container in containers)


def container_images(obj: Mapping[str, Any]) -> str:
    return containers_cells(obj, "image")


def pod_restarts(summary: PodSummary, now: datetime) -> str:
    """`printPod`'s RESTARTS cell: the count, and how long ago the last counted container exited."""
    if summary.restarts and summary.last_restart is not None:
        return f"{summary.restarts} ({human_duration(now - summary.last_restart)} ago)"
    return str(summary.restarts)


def readiness_gates(pod: Mapping[str, Any]) -> str:
    gates = dig(pod, "spec", "readinessGates") or []
    if not gates:
        return "<none>"
    conditions = {c.get("type"): c.get("status") for c in reversed(dig(pod, "status", "conditions") or [])}
    return f"{sum(conditions.get(g.get('conditionType')) == 'True' for g in gates)}/{len(gates)}"


def host_port(host: str, port: Any) -> str:
    """`net.JoinHostPort`: IPv6 hosts are bracketed."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def endpoints_cell(endpoints: Mapping[str, Any]) -> str:
    """`formatEndpoints`: up to three `ip:port`, then `+ N more...`; `<none>` without subsets."""
    subsets = endpoints.get("subsets") or []
    if not subsets:
        return "<none>"
    shown: list[str] = []
    count = 0
    for subset in subsets:
        ips = [address.get("ip", "") for address in subset.get("addresses") or []]
        for port in subset.get("ports") or [None]:
            count += len(ips)
            shown += [ip if port is None else host_port(ip, port.get("port", 0)) for ip in ips]
    text = ",".join(shown[:3])
    return f"{text} + {count - 3} more..." if count > 3 else text


def service_external_ip(service: Mapping[str, Any]) -> str:
    """`getServiceExternalIP` (wide: load balancer addresses are never cut short)."""
    spec = service.get("spec") or {}
    kind, external = spec.get("type") or "ClusterIP", list(spec.get("externalIPs") or [])
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if kind == "LoadBalancer":
        ingress = dig(service, "status", "loadBalancer", "ingress") or []
        balancers = sorted({str(name) for i in ingress if (name := i.get("ip") or i.get("hostname"))})
        return ",".join(balancers + external) or "<pending>"
    return str(spec.get("externalName") or "") if kind == "ExternalName" else "<unknown>"


def service_ports(service: Mapping[str, Any]) -> str:
    pieces = []
    for port in dig(service, "spec", "ports") or []:
        node_port = f":{port['nodePort']}" if port.get("nodePort") else ""
        pieces.append(f"{port.get('port', 0)}{node_port}/{port.get('protocol') or 'TCP'}")
    return ",".join(pieces) or "<none>"


def access_modes(modes: Any) -> str:
    """`GetAccessModesAsString`: RWO, ROX, RWX, RWOP in that order."""
    names = {
        "ReadWriteOnce": "RWO",
        "ReadOnlyMany": "ROX",
        "ReadWriteMany": "RWX",
        "ReadWriteOncePod": "RWOP",
    }
    return ",".join(short for mode, short in names.items() if mode in (modes or []))


def first_set(obj: Obj, *paths: tuple[str, ...]) -> Any:
    """The first set field among `paths` (core/v1 and events.k8s.io/v1 Events name fields differently)."""
    return next((value for path in paths if (value := dig(obj, *path))), None)


def event_first_seen(obj: Obj, now: datetime) -> str:
    first = first_set(obj, ("firstTimestamp",), ("deprecatedFirstTimestamp",)) or dig(obj, "eventTime")
    return age(first, now)


def event_last_seen(obj: Obj, now: datetime) -> str:
    if dig(obj, "series") is not None:
        return age(dig(obj, "series", "lastObservedTime"), now)
    last = first_set(obj, ("lastTimestamp",), ("deprecatedLastTimestamp",))
    return age(last, now) if last else event_first_seen(obj, now)


def event_object(obj: Obj, now: datetime) -> str:
    ref = first_set(obj, ("involvedObject",), ("regarding",)) or {}
    kind, name = str(ref.get("kind", "")).lower(), ref.get("name", "")
    return f"{kind}/{name}" if name else kind


def event_field_path(obj: Obj, now: datetime) -> str:
    return str(dig(first_set(obj, ("involvedObject",), ("regarding",)), "fieldPath") or "")


def event_message(obj: Obj, now: datetime) -> str:
    return str(first_set(obj, ("message",), ("note",)) or "").strip()


def event_source(obj: Obj, now: datetime) -> str:
    source = first_set(obj, ("source",), ("deprecatedSource",)) or {}
    component = source.get("component") or first_set(obj, ("reportingComponent",), ("reportingController",)) or ""
    instance = source.get("host") or dig(obj, "reportingInstance") or ""
    return f"{component}, {instance}" if instance else component


def event_count(obj: Obj, now: datetime) -> int:
    if dig(obj, "series") is not None:
        return int(dig(obj, "series", "count") or 0)
    return int(first_set(obj, ("count",), ("deprecatedCount",)) or 1)


def subjects(kind: str) -> Value:
    def cell(obj: Obj, now: datetime) -> str:
        found = [s for s in obj.get("subjects") or [] if s.get("kind") == kind]
        if kind == "ServiceAccount":
            return ", ".join(f"{s.get('namespace', '')}/{s.get('name', '')}" for s in found)
        return ", ".join(str(s.get("name", "")) for s in found)

    return cell


def cluster_ip(obj: Obj, now: datetime) -> str:
    ips = dig(obj, "spec", "clusterIPs") or [dig(obj, "spec", "clusterIP")]
    return str(ips[0] or "<none>")


def pod_ip(obj: Obj, now: datetime) -> str:
    ips = dig(obj, "status", "podIPs") or []
    return (ips[0].get("ip") if ips else None) or dig(obj, "status", "podIP") or "<none>"


def claim_phase(obj: Obj, now: datetime) -> str:
    return "Terminating" if dig(obj, "metadata", "deletionTimestamp") else str(dig(obj, "status", "phase") or "")


def storage_class(obj: Obj, now: datetime) -> str:
    annotations = dig(obj, "metadata", "annotations") or {}
    beta = annotations.get("volume.beta.kubernetes.io/storage-class")
    return str(beta if beta is not None else dig(obj, "spec", "storageClassName") or "")


def node_status(obj: Obj, now: datetime) -> str:
    ready = next((c for c in dig(obj, "status", "conditions") or [] if c.get("type") == "Ready"), None)
    status = ["Unknown" if ready is None else "Ready" if ready.get("status") == "True" else "NotReady"]
    return ",".join(status + (["SchedulingDisabled"] if dig(obj, "spec", "unschedulable") else []))


def node_roles(obj: Obj, now: datetime) -> str:
    labels = dig(obj, "metadata", "labels") or {}
    prefix = "node-role.kubernetes.io/"
    roles = {key.removeprefix(prefix) for key in labels if key.startswith(prefix)}
    roles |= {labels["kubernetes.io/role"]} if labels.get("kubernetes.io/role") else set()
    return ",".join(sorted(roles - {""})) or "<none>"


def node_address(kind: str) -> Value:
    return lambda obj, now: next(
        (a.get("address") for a in dig(obj, "status", "addresses") or [] if a.get("type") == kind), "<none>"
    )
