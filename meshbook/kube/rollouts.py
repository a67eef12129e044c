"""`kubectl rollout status` for Deployments, StatefulSets and DaemonSets: its rules, and a wait on them."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from meshbook.errors import MeshbookError
from meshbook.kube.client import api_message
from meshbook.kube.event_times import SIGHTINGS, EventsAfter, EventSightings, event_time
from meshbook.kube.waits import Obj, wait_for
from meshbook.podstatus import dig, is_terminating

WorkloadKind = Literal["Deployment", "StatefulSet", "DaemonSet"]


class RolloutFailedError(MeshbookError):
    """The rollout cannot finish by waiting (progress deadline exceeded, or no rolling update)."""


def rollout_status(obj: Mapping[str, Any]) -> tuple[bool, str]:
    """(done, message) as `kubectl rollout status` computes them for a Deployment, StatefulSet or DaemonSet.

    Raises RolloutFailedError where kubectl fails instead of waiting.
    """
    kind = obj.get("kind") or ""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    name = meta.get("name")
    generation, observed = meta.get("generation") or 0, status.get("observedGeneration") or 0
    replicas = spec.get("replicas", 1)
    if kind == "Deployment":
        if generation > observed:
            return False, "Waiting for deployment spec update to be observed..."
        for condition in status.get("conditions") or []:
            if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
                raise RolloutFailedError(f'deployment "{name}" exceeded its progress deadline')
        updated = status.get("updatedReplicas") or 0
        if updated < replicas:
            return False, (
                f'Waiting for deployment "{name}" rollout to finish: '
                f"{updated} out of {replicas} new replicas have been updated..."
            )
        if (status.get("replicas") or 0) > updated:
            old = (status.get("replicas") or 0) - updated
            return (
                False,
                f'Waiting for deployment "{name}" rollout to finish: {old} old replicas are pending termination...',
            )
        available = status.get("availableReplicas") or 0
        if available < updated:
            return False, (
                f'Waiting for deployment "{name}" rollout to finish: '
                f"{available} of {updated} updated replicas are available..."
            )
        return True, f'deployment "{name}" successfully rolled out'
    if kind == "StatefulSet":
        strategy = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
        if strategy != "RollingUpdate":
            raise RolloutFailedError("rollout status is only available for RollingUpdate strategy type")
        if observed == 0 or generation > observed:
            return False, "Waiting for statefulset spec update to be observed..."
        ready = status.get("readyReplicas") or 0
        if ready < replicas:
            return False, f"Waiting for {replicas - ready} pods to be ready..."
        partition = ((spec.get("updateStrategy") or {}).get("rollingUpdate") or {}).get("partition")
        updated = status.get("updatedReplicas") or 0
        if partition is not None:
            if updated < replicas - partition:
                return False, (
                    "Waiting for partitioned roll out to finish: "
                    f"{updated} out of {replicas - partition} new pods have been updated..."
                )
            return True, f"partitioned roll out complete: {updated} new pods have been updated..."
        if status.get("updateRevision") != status.get("currentRevision"):
            return False, (
                f"waiting for statefulset rolling update to complete {updated} pods "
                f"at revision {status.get('updateRevision')}..."
            )
        return True, f"statefulset rolling update complete {status.get('currentReplicas') or ready} pods..."
    if kind == "DaemonSet":
        strategy = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate")
        if strategy != "RollingUpdate":
            raise RolloutFailedError("rollout status is only available for RollingUpdate strategy type")
        if generation > observed:
            return False, "Waiting for daemon set spec update to be observed..."
        desired = status.get("desiredNumberScheduled") or 0
        updated = status.get("updatedNumberScheduled") or 0
        if updated < desired:
            return False, (
                f'Waiting for daemon set "{name}" rollout to finish: '
                f"{updated} out of {desired} new pods have been updated..."
            )
        available = status.get("numberAvailable") or 0
        if available < desired:
            return False, (
                f'Waiting for daemon set "{name}" rollout to finish: '
                f"{available} of {desired} updated pods are available..."
            )
        return True, f'daemon set "{name}" successfully rolled out'
    raise MeshbookError(f"rollout status is not available for {kind or 'an object without kind'}")


def wait_for_rollout(
    api: client.ApiClient, namespace: str, kind: WorkloadKind, name: str, timeout: float = 180.0
) -> Obj:
    """`kubectl rollout status KIND/NAME`: wait until the rollout is complete; return the object.

    A missing object is waited for (a chart may create it a moment later). Raises RolloutFailedError
    at once where kubectl fails, WaitTimeoutError (last seen: kubectl's progress message) on timeout.
    """
    if kind not in ("Deployment", "StatefulSet", "DaemonSet"):
        raise MeshbookError(f"rollout status is not available for {kind}: use Deployment, StatefulSet or DaemonSet")

    def typed(objects: Sequence[Obj]) -> list[Obj]:
        return [{**o, "kind": kind} for o in objects]  # list and watch items may omit kind

    def done(objects: Sequence[Obj]) -> bool:
        return len(objects) == 1 and rollout_status(typed(objects)[0])[0]

    def last_seen(objects: Sequence[Obj]) -> str:
        return rollout_status(typed(objects)[0])[1] if objects else f"{kind} {namespace}/{name} not found"

    found = wait_for(
        api,
        kind,
        done,
        namespace=namespace,
        field_selector=f"metadata.name={name}",
        description=f"rollout of {kind} {namespace}/{name}",
        timeout=timeout,
        last_seen=last_seen,
    )
    return typed(found)[0]


def creation_failure(
    api: client.ApiClient, namespace: str, kind: str, workload: Mapping[str, Any], since: float | EventsAfter = 0.0
) -> str | None:
    """Why the workload's controller cannot create its pods right now (e.g. an admission webhook denies
    them), or None: a Deployment's ReplicaSets say so in their ReplicaFailure condition, a StatefulSet or
    DaemonSet in FailedCreate events (only those at or after `since`, seconds since the epoch; pass one
    `EventsAfter` to every call of a wait so a fresh event counts even when its timestamp looks old).
    Pods that were never created cannot become Ready by waiting; the reason quotes the API server."""
    uid = str((workload.get("metadata") or {}).get("uid"))
    name = (workload.get("metadata") or {}).get("name")
    try:
        if kind == "Deployment":
            response: Any = client.AppsV1Api(api).list_namespaced_replica_set(namespace, _preload_content=False)
            for rs in json.loads(response.data).get("items") or []:
                owners = (rs.get("metadata") or {}).get("ownerReferences") or []
                if not any(o.get("uid") == uid for o in owners):
                    continue
                for condition in (rs.get("status") or {}).get("conditions") or []:
                    if condition.get("type") == "ReplicaFailure" and condition.get("status") == "True":
                        rs_name = rs["metadata"]["name"]
                        return f"ReplicaSet {namespace}/{rs_name} {condition.get('reason')}: {condition.get('message')}"
            return None
        message = failed_create_event(api, namespace, {uid}, since)
    except ApiException as exc:
        raise MeshbookError(f"cannot read why {kind} {namespace}/{name} has no pods: {api_message(exc)}") from None
    return f"{kind} {namespace}/{name} FailedCreate: {message}" if message else None


def failed_create_event(
    api: client.ApiClient, namespace: str, owner_uids: set[str], since: float | EventsAfter
) -> str | None:
    """The newest FailedCreate event's message about one of `owner_uids` at or after `since`, if any."""
    try:
        response: Any = client.CoreV1Api(api).list_namespaced_event(
            namespace, field_selector="reason=FailedCreate", _preload_content=False
        )
    except ApiException as exc:
        raise MeshbookError(
            f"cannot list the FailedCreate events of namespace {namespace}: {api_message(exc)}"
        ) from None
    after = since if isinstance(since, EventsAfter) else EventsAfter(since)
    owned = [
        e for e in json.loads(response.data).get("items") or [] if str(dig(e, "involvedObject", "uid")) in owner_uids
    ]
    found = after.select(owned)
    if not found:
        return None
    return str(max(found, key=event_time).get("message"))


# How the API server names the webhook in a refusal: `failed calling webhook "NAME": ...` or
# `admission webhook "NAME" denied the request: ...` (apiserver's admission/plugin/webhook errors).
_WEBHOOK_IN_MESSAGE = re.compile(r'(?:failed calling webhook|admission webhook) "([^"]+)"')


def failed_webhook(message: str) -> str | None:
    """The admission webhook an API server refusal names, if it names one."""
    found = _WEBHOOK_IN_MESSAGE.search(message)
    return found.group(1) if found else None


# A volume's source missing this long is not a race with whoever creates it: the pod will not start.
MOUNT_GRACE_SECONDS = 30.0
_NOT_STARTED = {"ContainerCreating", "PodInitializing"}


def _not_started(pod: Mapping[str, Any]) -> bool:
    if is_terminating(pod) or dig(pod, "status", "phase") != "Pending":
        return False
    statuses = [*(dig(pod, "status", "initContainerStatuses") or []), *(dig(pod, "status", "containerStatuses") or [])]
    return all(dig(cs, "state", "waiting", "reason") in _NOT_STARTED for cs in statuses)


def mount_failure(
    api: client.ApiClient,
    namespace: str,
    pods: Sequence[Mapping[str, Any]],
    grace: float = MOUNT_GRACE_SECONDS,
    sightings: EventSightings = SIGHTINGS,
) -> str | None:
    """Why one of `pods` cannot start, or None: it is still creating its containers and the kubelet has
    reported `FailedMount` for at least `grace` seconds (a Secret or ConfigMap a volume needs is missing),
    counted from when this process first saw the event (`event_times`: the server's clock may run ahead)."""
    stuck = {str(dig(p, "metadata", "uid")): str(dig(p, "metadata", "name")) for p in pods if _not_started(p)}
    if not stuck:
        return None
    try:
        response: Any = client.CoreV1Api(api).list_namespaced_event(
            namespace, field_selector="reason=FailedMount", _preload_content=False
        )
    except ApiException as exc:
        raise MeshbookError(
            f"cannot list the FailedMount events of namespace {namespace}: {api_message(exc)}"
        ) from None
    for event in json.loads(response.data).get("items") or []:
        uid = str((event.get("involvedObject") or {}).get("uid"))
        if uid not in stuck:
            continue
        lasted = sightings.lasted(event)
        if lasted >= grace:
            return (
                f"pod {stuck[uid]} cannot start: {event.get('message')} (for {lasted:.0f}s); create it, "
                "or fix the volume's name in the pod template"
            )
    return None
