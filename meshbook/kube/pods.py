"""Pods as `kubectl get pods` shows them (READY, STATUS, RESTARTS), as rows and pandas snapshots.

Pods are plain dicts in the API's JSON shape (camelCase keys, as `kubectl get -o json` prints them),
the same shape manifests and evidence use; the official client is asked for raw JSON so nothing is
lost or renamed by its models. READY and STATUS follow kubectl's `printPod`, including restartable
init containers (native sidecars), which count towards READY like containers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from meshbook.errors import MeshbookError, UnreachableError
from meshbook.kube.client import api_message
from meshbook.kube.event_times import EventsAfter
from meshbook.kube.rollouts import failed_create_event
from meshbook.kube.waits import HopelessPods, wait_for
from meshbook.params import SidecarMode
from meshbook.podstatus import PROXY, describe_pods, dig, is_ready, parse_time, pod_summary, sidecar_mode

if TYPE_CHECKING:
    import pandas as pd

Obj = dict[str, Any]

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet")


@dataclass(frozen=True)
class PodRow:
    """One pod as meshbook reports it; `ready` is kubectl's READY ("2/2"), `status` its STATUS."""

    namespace: str
    pod: str
    workload: str
    ready: str
    status: str
    restarts: int
    containers: list[str] = field(default_factory=list)
    init_containers: list[str] = field(default_factory=list)
    sidecar: bool = False
    sidecar_mode: SidecarMode | None = None
    phase: str = ""
    age_seconds: float = 0.0


COLUMNS = [f.name for f in fields(PodRow)]


def controller_of(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ownerReference with `controller: true` (the object's managing workload), if any."""
    refs = dig(obj, "metadata", "ownerReferences") or []
    return next((r for r in refs if r.get("controller")), None)


def workload_of(pod: Mapping[str, Any], deployment_of_replicaset: Mapping[str, str] | None = None) -> str:
    """The name of the workload managing the pod: ReplicaSet -> Deployment, else the controller, else the pod.

    `deployment_of_replicaset` maps ReplicaSet names to their Deployment (`pod_snapshot` reads it from
    the cluster); without an entry, a ReplicaSet named `<deployment>-<pod-template-hash>` (how the
    Deployment controller names them) is resolved from the pod's `pod-template-hash` label.
    """
    owner = controller_of(pod)
    name = str(dig(pod, "metadata", "name") or "")
    if owner is None:
        return name
    owner_name = str(owner.get("name") or name)
    if owner.get("kind") != "ReplicaSet":
        return owner_name
    if deployment_of_replicaset and owner_name in deployment_of_replicaset:
        return deployment_of_replicaset[owner_name]
    template_hash = (dig(pod, "metadata", "labels") or {}).get("pod-template-hash")
    if template_hash and owner_name.endswith(f"-{template_hash}"):
        return owner_name[: -len(template_hash) - 1]
    return owner_name


def pod_row(
    pod: Mapping[str, Any], deployment_of_replicaset: Mapping[str, str] | None = None, *, now: datetime
) -> PodRow:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    ready, status, restarts = pod_summary(pod)
    containers = [str(c.get("name")) for c in spec.get("containers") or []]
    inits = spec.get("initContainers") or []
    created = parse_time(meta.get("creationTimestamp"))
    proxy_sidecar = any(c.get("name") == PROXY and c.get("restartPolicy") == "Always" for c in inits)
    return PodRow(
        namespace=str(meta.get("namespace") or ""),
        pod=str(meta.get("name") or ""),
        workload=workload_of(pod, deployment_of_replicaset),
        ready=ready,
        status=status,
        restarts=restarts,
        containers=containers,
        init_containers=[str(c.get("name")) for c in inits],
        sidecar=PROXY in containers or proxy_sidecar,
        sidecar_mode=sidecar_mode(pod),
        phase=str(dig(pod, "status", "phase") or ""),
        age_seconds=max(0.0, (now - created).total_seconds()) if created else 0.0,
    )


def pod_rows(
    pods: Iterable[Mapping[str, Any]],
    deployment_of_replicaset: Mapping[str, str] | None = None,
    *,
    now: datetime | None = None,
) -> list[PodRow]:
    """Rows for `pods` (API JSON dicts), sorted by namespace and name as kubectl lists them."""
    at = now or datetime.now(UTC)
    rows = [pod_row(p, deployment_of_replicaset, now=at) for p in pods]
    return sorted(rows, key=lambda r: (r.namespace, r.pod))


def rows_frame(rows: Sequence[PodRow]) -> pd.DataFrame:
    """A DataFrame with one column per PodRow field (present even when there are no rows)."""
    import pandas as pd

    return pd.DataFrame([asdict(r) for r in rows], columns=COLUMNS)


def ready_by_workload(df: pd.DataFrame) -> dict[str, list[str]]:
    """READY per workload, pods in name order: `{"vault-webhook": ["2/2", "2/2"]}`, as runbooks expect it.

    Keyed by workload name only: pass a one-namespace frame (what `pod_snapshot` returns).
    """
    out: dict[str, list[str]] = {}
    for _, row in df.sort_values(["workload", "pod"]).iterrows():
        out.setdefault(str(row["workload"]), []).append(str(row["ready"]))
    return out


# -- the cluster ----------------------------------------------------------------------------------------


def _raw(response: Any) -> Obj:
    """The JSON body of a `_preload_content=False` call: the API's own shape, not the client's models."""
    return dict(json.loads(response.data))


def _unreachable(api: client.ApiClient, exc: Exception) -> UnreachableError:
    return UnreachableError(f"cannot reach the cluster at {api.configuration.host}: {exc}")


def list_pods(api: client.ApiClient, namespace: str, label_selector: str | None = None) -> list[Obj]:
    """Pods of `namespace` (optionally matching `label_selector`) as API JSON dicts."""
    try:
        response = client.CoreV1Api(api).list_namespaced_pod(
            namespace, label_selector=label_selector, _preload_content=False
        )
    except ApiException as exc:
        raise MeshbookError(f"cannot list pods in namespace {namespace}: {api_message(exc)}") from None
    except Exception as exc:  # urllib3 connection errors
        raise _unreachable(api, exc) from None
    return list(_raw(response).get("items") or [])


def deployments_of_replicasets(api: client.ApiClient, namespace: str) -> dict[str, str]:
    """ReplicaSet name -> name of the Deployment controlling it, from the ReplicaSets' ownerReferences."""
    try:
        response = client.AppsV1Api(api).list_namespaced_replica_set(namespace, _preload_content=False)
    except ApiException as exc:
        raise MeshbookError(f"cannot list replicasets in namespace {namespace}: {api_message(exc)}") from None
    except Exception as exc:
        raise _unreachable(api, exc) from None
    out: dict[str, str] = {}
    for rs in _raw(response).get("items") or []:
        owner = controller_of(rs)
        if owner is not None and owner.get("kind") == "Deployment":
            out[str(rs["metadata"]["name"])] = str(owner.get("name"))
    return out


def pod_snapshot(api: client.ApiClient, namespace: str, label_selector: str | None = None) -> pd.DataFrame:
    """`kubectl get pods` of a namespace as a DataFrame (columns: `COLUMNS`), workloads resolved."""
    pods = list_pods(api, namespace, label_selector)
    owners = deployments_of_replicasets(api, namespace) if any(_owned_by_replicaset(p) for p in pods) else {}
    return rows_frame(pod_rows(pods, owners))


def _owned_by_replicaset(pod: Mapping[str, Any]) -> bool:
    owner = controller_of(pod)
    return owner is not None and owner.get("kind") == "ReplicaSet"


def delete_pods(api: client.ApiClient, namespace: str, label_selector: str | None = None) -> list[str]:
    """`kubectl delete pods --all -n NS` (or `-l SELECTOR`): Background propagation; the deleted names."""
    return [str(p["metadata"]["name"]) for p in _delete(api, namespace, list_pods(api, namespace, label_selector))]


def _delete(api: client.ApiClient, namespace: str, pods: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    core = client.CoreV1Api(api)
    options = client.V1DeleteOptions(propagation_policy="Background")
    deleted = []
    for pod in sorted(pods, key=lambda p: str(p["metadata"]["name"])):
        name = str(pod["metadata"]["name"])
        try:
            core.delete_namespaced_pod(name, namespace, body=options, _preload_content=False)
        except ApiException as exc:
            if exc.status == 404:  # already gone: what we wanted
                continue
            raise MeshbookError(f"cannot delete pod {namespace}/{name}: {api_message(exc)}") from None
        except Exception as exc:
            raise _unreachable(api, exc) from None
        deleted.append(pod)
    return deleted


def recreate_pods(
    api: client.ApiClient,
    namespace: str,
    timeout: float = 180.0,
    *,
    label_selector: str | None = None,
    give_up_after_crashes: int | None = None,
) -> list[Obj]:
    """Delete the pods (as `delete_pods`) and wait until they are gone and their owners' replacements are Ready.

    Used after a namespace's injection label changes: only new pods get (or lose) the sidecar. Every
    deleted pod with a controlling owner must be replaced by as many Ready pods of that owner (by
    uid: a StatefulSet's replacement keeps the name); pods without an owner are only awaited gone.
    Returns the replacement pods. Raises WaitTimeoutError naming what was still missing, or
    WaitAbandoned when a replacement crash-loops (see `wait_for_pods_ready`).
    """
    deleted = _delete(api, namespace, list_pods(api, namespace, label_selector))
    gone_uids = {str(p["metadata"]["uid"]) for p in deleted}
    wanted: dict[str, int] = {}
    owner_names: dict[str, str] = {}
    for pod in deleted:
        owner = controller_of(pod)
        if owner is not None:
            wanted[str(owner["uid"])] = wanted.get(str(owner["uid"]), 0) + 1
            owner_names[str(owner["uid"])] = f"{owner.get('kind')} {owner.get('name')}"

    def replacements(pods: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        return [
            p
            for p in pods
            if str(p["metadata"].get("uid")) not in gone_uids and str((controller_of(p) or {}).get("uid")) in wanted
        ]

    def done(pods: Sequence[Obj]) -> bool:
        if any(str(p["metadata"].get("uid")) in gone_uids for p in pods):
            return False
        ready: dict[str, int] = {}
        for p in replacements(pods):
            if is_ready(p):
                uid = str((controller_of(p) or {}).get("uid"))
                ready[uid] = ready.get(uid, 0) + 1
        return all(ready.get(uid, 0) >= count for uid, count in wanted.items())

    def last_seen(pods: Sequence[Obj]) -> str:
        old = [p for p in pods if str(p["metadata"].get("uid")) in gone_uids]
        parts = [f"not yet gone: {describe_pods(old)}"] if old else []
        parts.append(f"replacements: {describe_pods(replacements(pods))}")
        return "; ".join(parts)

    since = EventsAfter(time.time())  # one first look for the whole wait

    def owners_failing() -> str | None:
        message = failed_create_event(api, namespace, set(wanted), since)
        return f"the replacements cannot be created: {message}" if message else None

    hopeless = HopelessPods(give_up_after_crashes, sum(wanted.values()), owners_failing)

    owners = ", ".join(f"{owner_names[u]} x{n}" for u, n in sorted(wanted.items(), key=lambda i: owner_names[i[0]]))
    description = f"{len(deleted)} deleted pod(s) in namespace {namespace} to be gone" + (
        f" and replaced by Ready pods of {owners}" if owners else ""
    )
    final = wait_for(
        api,
        "Pod",
        done,
        namespace=namespace,
        label_selector=label_selector,
        description=description,
        timeout=timeout,
        last_seen=last_seen,
        give_up=lambda pods: hopeless(replacements(pods)),
        recheck_every=hopeless.recheck_every,
    )
    return sorted((dict(p) for p in replacements(final)), key=lambda p: str(p["metadata"]["name"]))
