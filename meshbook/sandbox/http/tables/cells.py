"""Cell values of server-side tables, computed as the Kubernetes API server computes them.

`table_columns.py` holds which columns each kind has; this module holds the rules behind the cells that are
more than a field lookup: ages (`duration.HumanDuration`), label selectors, a pod's READY/STATUS/RESTARTS,
service, endpoint and event summaries. Functions shaped `(obj, now) -> cell` are columns as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

Cell = str | int | float | bool | None
Obj = Mapping[str, Any]
Value = Callable[[Obj, datetime], Cell]


def dig(obj: Any, *path: str) -> Any:
    """The value at `path` in nested dicts, or None when a step is missing."""
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime (UTC when no zone is given); None if unset or invalid."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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


@dataclass(frozen=True)
class PodSummary:
    ready: str
    status: str
    restarts: str


def _terminated_reason(terminated: Mapping[str, Any]) -> str:
    if terminated.get("reason"):
        return str(terminated["reason"])
    if terminated.get("signal"):
        return f"Signal:{terminated['signal']}"
    return f"ExitCode:{terminated.get('exitCode', 0)}"


def _condition_true(status: Mapping[str, Any], kind: str) -> bool:
    found = next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)
    return found is not None and found.get("status") == "True"


def pod_summary(pod: Mapping[str, Any], now: datetime) -> PodSummary:
    """READY, STATUS and RESTARTS of `kubectl get pods`, as `printPod` computes them."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    inits = spec.get("initContainers") or []
    sidecars = {c.get("name") for c in inits if c.get("restartPolicy") == "Always"}
    total = len(spec.get("containers") or []) + sum(1 for c in inits if c.get("restartPolicy") == "Always")
    ready = restarts = sidecar_restarts = 0
    last: datetime | None = None
    last_sidecar: datetime | None = None
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    initializing = False
    for index, cs in enumerate(status.get("initContainerStatuses") or []):
        finished = parse_time(dig(cs, "lastState", "terminated", "finishedAt"))
        restarts += cs.get("restartCount", 0)
        last = max(filter(None, (last, finished)), default=None)
        sidecar = cs.get("name") in sidecars
        if sidecar:
            sidecar_restarts += cs.get("restartCount", 0)
            last_sidecar = max(filter(None, (last_sidecar, finished)), default=None)
        terminated, waiting = dig(cs, "state", "terminated"), dig(cs, "state", "waiting")
        if terminated is not None and terminated.get("exitCode", 0) == 0:
            continue
        if sidecar and cs.get("started") is True:
            ready += bool(cs.get("ready"))
            continue
        if terminated is not None:
            reason = "Init:" + _terminated_reason(terminated)
        elif waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{index}/{len(inits)}"
        initializing = True
        break

    if not initializing or _condition_true(status, "Initialized"):
        restarts, last = sidecar_restarts, last_sidecar
        running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += cs.get("restartCount", 0)
            finished = parse_time(dig(cs, "lastState", "terminated", "finishedAt"))
            last = max(filter(None, (last, finished)), default=None)
            terminated, waiting = dig(cs, "state", "terminated"), dig(cs, "state", "waiting")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None:
                reason = _terminated_reason(terminated)
            elif cs.get("ready") and dig(cs, "state", "running") is not None:
                running = True
                ready += 1
        if reason == "Completed" and running:
            reason = "Running" if _condition_true(status, "Ready") else "NotReady"

    if dig(pod, "metadata", "deletionTimestamp") and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif dig(pod, "metadata", "deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    restarts_text = str(restarts)
    if restarts and last is not None:
        restarts_text = f"{restarts} ({human_duration(now - last)} ago)"
    return PodSummary(f"{ready}/{total}", reason, restarts_text)


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
