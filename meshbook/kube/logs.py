"""Container logs as `kubectl logs` gives them, passed through a mask before anything is returned.

Logs may hold secret values (vault-env prints what it injected when asked to, apps echo their
environment), so when a `mask` is given (meshbook's redactor) it is applied to every text this module
returns or puts in an error message: nothing leaves unmasked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from meshbook.errors import MeshbookError, UnreachableError
from meshbook.kube.client import api_message
from meshbook.kube.pods import list_pods
from meshbook.podstatus import is_ready

Obj = dict[str, Any]
Mask = Callable[[str], str]
LogWorkloadKind = Literal["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"]

DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"

_READERS: dict[str, tuple[Callable[[client.ApiClient], Any], str]] = {
    "Deployment": (client.AppsV1Api, "read_namespaced_deployment"),
    "StatefulSet": (client.AppsV1Api, "read_namespaced_stateful_set"),
    "DaemonSet": (client.AppsV1Api, "read_namespaced_daemon_set"),
    "ReplicaSet": (client.AppsV1Api, "read_namespaced_replica_set"),
    "Job": (client.BatchV1Api, "read_namespaced_job"),
}


def _masked(mask: Mask | None, text: str) -> str:
    return mask(text) if mask is not None else text


def default_container(pod: Mapping[str, Any]) -> str:
    """The container `kubectl logs POD` reads: the default-container annotation's, else the only one.

    Raises MeshbookError listing the choices when the pod has several containers and no (valid)
    annotation.
    """
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    containers = [str(c.get("name")) for c in spec.get("containers") or []]
    inits = [str(c.get("name")) for c in spec.get("initContainers") or []]
    annotated = (meta.get("annotations") or {}).get(DEFAULT_CONTAINER_ANNOTATION)
    if annotated and annotated in containers + inits:
        return str(annotated)
    if len(containers) == 1:
        return containers[0]
    where = f"pod {meta.get('namespace')}/{meta.get('name')}"
    reason = (
        f"its {DEFAULT_CONTAINER_ANNOTATION} annotation names no container of it ({annotated})"
        if annotated
        else f"no {DEFAULT_CONTAINER_ANNOTATION} annotation"
    )
    choices = ", ".join(containers) + (f" (init containers: {', '.join(inits)})" if inits else "")
    raise MeshbookError(f"{where} has {len(containers)} containers and {reason}: choose a container: {choices}")


def _read_pod(api: client.ApiClient, namespace: str, name: str) -> Obj:
    try:
        response = client.CoreV1Api(api).read_namespaced_pod(name, namespace, _preload_content=False)
    except ApiException as exc:
        raise MeshbookError(f"cannot read pod {namespace}/{name}: {api_message(exc)}") from None
    except Exception as exc:  # urllib3 connection errors
        raise UnreachableError(f"cannot reach the cluster at {api.configuration.host}: {exc}") from None
    return dict(json.loads(cast(Any, response).data))


def pod_log(
    api: client.ApiClient,
    pod: Mapping[str, Any],
    container: str | None = None,
    *,
    previous: bool = False,
    tail_lines: int | None = None,
    mask: Mask | None = None,
) -> str:
    """The log of a container of `pod` (an API JSON dict), masked; see `container_log`."""
    meta = pod.get("metadata") or {}
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    try:
        chosen = container or default_container(pod)
    except MeshbookError as exc:
        raise MeshbookError(_masked(mask, str(exc))) from None
    options: dict[str, Any] = {"container": chosen, "previous": previous}
    if tail_lines is not None:
        options["tail_lines"] = tail_lines
    try:
        response = client.CoreV1Api(api).read_namespaced_pod_log(name, namespace, **options, _preload_content=False)
    except ApiException as exc:
        what = f"{'previous ' if previous else ''}log of container {chosen} of pod {namespace}/{name}"
        raise MeshbookError(_masked(mask, f"cannot read the {what}: {api_message(exc)}")) from None
    except Exception as exc:
        raise UnreachableError(f"cannot reach the cluster at {api.configuration.host}: {exc}") from None
    data = cast(Any, response).data  # _preload_content=False: the urllib3 response
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else str(data)
    return _masked(mask, text)


def container_log(
    api: client.ApiClient,
    namespace: str,
    pod: str,
    container: str | None = None,
    *,
    previous: bool = False,
    tail_lines: int | None = None,
    mask: Mask | None = None,
) -> str:
    """`kubectl logs POD [-c CONTAINER] [--previous] [--tail N]`, with `mask` applied to the result.

    Without `container`: the pod's `kubectl.kubernetes.io/default-container` annotation, else its only
    container; otherwise a MeshbookError lists the choices. Error messages are masked too.
    """
    return pod_log(api, _read_pod(api, namespace, pod), container, previous=previous, tail_lines=tail_lines, mask=mask)


def selector_string(selector: Mapping[str, Any]) -> str:
    """A LabelSelector (matchLabels, matchExpressions) as the `labelSelector` query string."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), ",".join(expr.get("values") or [])
        if op == "In":
            parts.append(f"{key} in ({values})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
        else:
            raise MeshbookError(f"unsupported label selector operator {op!r} for key {key!r}")
    return ",".join(parts)


def _time(value: Any) -> float:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return float("inf")  # empty times sort last, as kubectl's afterOrZero does


def _logging_order(pod: Mapping[str, Any]) -> tuple[Any, ...]:
    """kubectl's `podutils.ByLogging`: scheduled, Running, Ready longest, most restarts, oldest first."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    ready = is_ready(pod)
    ready_since = next(
        (c.get("lastTransitionTime") for c in status.get("conditions") or [] if c.get("type") == "Ready"), None
    )
    restarts = [c.get("restartCount", 0) for c in status.get("containerStatuses") or []]
    phase_rank = {"Running": 0, "Unknown": 1, "Pending": 2}.get(status.get("phase") or "", 0)
    return (
        0 if spec.get("nodeName") else 1,
        phase_rank,
        0 if ready else 1,
        _time(ready_since) if ready else 0.0,
        -max(restarts, default=0),
        _time((pod.get("metadata") or {}).get("creationTimestamp")),
        str((pod.get("metadata") or {}).get("name")),
    )


def first_pod(api: client.ApiClient, namespace: str, name: str, *, kind: LogWorkloadKind = "Deployment") -> Obj:
    """The pod `kubectl logs KIND/NAME` reads: of the workload's selector, first in kubectl's order."""
    reader = _READERS.get(kind)
    if reader is None:
        raise MeshbookError(f"cannot read logs of a {kind}: use one of {', '.join(_READERS)}")
    factory, method = reader
    try:
        response = getattr(factory(api), method)(name, namespace, _preload_content=False)
    except ApiException as exc:
        raise MeshbookError(f"cannot read {kind} {namespace}/{name}: {api_message(exc)}") from None
    except Exception as exc:
        raise UnreachableError(f"cannot reach the cluster at {api.configuration.host}: {exc}") from None
    workload = json.loads(response.data)
    selector = selector_string((workload.get("spec") or {}).get("selector") or {})
    pods: Sequence[Obj] = list_pods(api, namespace, selector or None)
    if not pods:
        raise MeshbookError(f"no pods of {kind} {namespace}/{name} (selector {selector or '<none>'})")
    return min(pods, key=_logging_order)


def workload_log(
    api: client.ApiClient,
    namespace: str,
    deployment: str,
    container: str | None = None,
    *,
    kind: LogWorkloadKind = "Deployment",
    previous: bool = False,
    tail_lines: int | None = None,
    mask: Mask | None = None,
) -> str:
    """`kubectl logs deploy/NAME`: the log of the first pod of the workload's selector, masked."""
    pod = first_pod(api, namespace, deployment, kind=kind)
    return pod_log(api, pod, container, previous=previous, tail_lines=tail_lines, mask=mask)
