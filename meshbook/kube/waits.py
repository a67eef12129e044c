"""Watch-based waits: list once, then watch from that resourceVersion, so no change is missed.

Every wait keeps the current set of watched objects (API JSON dicts, as `kubectl get -o json` shows
them), re-evaluates its condition after each event and returns as soon as it holds; nothing polls or
sleeps. A watch that ends (server timeout, dropped connection) is resumed from the last
resourceVersion seen; one that is too old (410 Expired) is replaced by a fresh list. On timeout a
`WaitTimeoutError` says what was awaited and what was last seen.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import MaxRetryError

from meshbook import progress
from meshbook.errors import ExitCode, MeshbookError, UnreachableError, WaitTimeoutError
from meshbook.kube.client import api_message
from meshbook.podstatus import CrashHistory, describe_pods, is_ready, is_terminating

Obj = dict[str, Any]
ListFunction = Callable[..., Any]
Predicate = Callable[[Sequence[Obj]], bool]

RECHECK_SECONDS = 3.0  # how often a wait looks beyond its watched set (e.g. why pods are missing)
_READ_SLACK = 15.0  # seconds a watch may stay silent beyond its own timeout before we call it dead


@dataclass(frozen=True)
class _Kind:
    api: Callable[[client.ApiClient], Any]
    namespaced: str | None  # method listing one namespace; None: cluster-scoped
    cluster: str  # method listing every namespace (or the cluster-scoped kind)


KINDS: dict[str, _Kind] = {
    "Pod": _Kind(client.CoreV1Api, "list_namespaced_pod", "list_pod_for_all_namespaces"),
    "Service": _Kind(client.CoreV1Api, "list_namespaced_service", "list_service_for_all_namespaces"),
    "Secret": _Kind(client.CoreV1Api, "list_namespaced_secret", "list_secret_for_all_namespaces"),
    "ConfigMap": _Kind(client.CoreV1Api, "list_namespaced_config_map", "list_config_map_for_all_namespaces"),
    "ServiceAccount": _Kind(
        client.CoreV1Api, "list_namespaced_service_account", "list_service_account_for_all_namespaces"
    ),
    "Namespace": _Kind(client.CoreV1Api, None, "list_namespace"),
    "Deployment": _Kind(client.AppsV1Api, "list_namespaced_deployment", "list_deployment_for_all_namespaces"),
    "StatefulSet": _Kind(client.AppsV1Api, "list_namespaced_stateful_set", "list_stateful_set_for_all_namespaces"),
    "DaemonSet": _Kind(client.AppsV1Api, "list_namespaced_daemon_set", "list_daemon_set_for_all_namespaces"),
    "ReplicaSet": _Kind(client.AppsV1Api, "list_namespaced_replica_set", "list_replica_set_for_all_namespaces"),
    "Job": _Kind(client.BatchV1Api, "list_namespaced_job", "list_job_for_all_namespaces"),
}


def list_function(api: client.ApiClient, kind: str, namespace: str | None) -> ListFunction:
    """The official client's list call for `kind` in `namespace` (None: all namespaces)."""
    spec = KINDS.get(kind)
    if spec is None:
        raise MeshbookError(f"cannot wait for {kind}: supported kinds are {', '.join(sorted(KINDS))}")
    target = spec.api(api)
    if namespace is None or spec.namespaced is None:
        return cast(ListFunction, getattr(target, spec.cluster))
    method = getattr(target, spec.namespaced)

    def namespaced(**kwargs: Any) -> Any:
        return method(namespace, **kwargs)

    return namespaced


class _JsonWatch(watch.Watch):
    """A Watch whose events keep the API's JSON (the client's models would rename and drop fields)."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def get_return_type(self, func: object) -> str:
        return ""

    def events(self, list_fn: ListFunction, **kwargs: Any) -> Generator[dict[str, Any], None, None]:
        return cast(Generator[dict[str, Any], None, None], self.stream(list_fn, **kwargs))  # type: ignore[no-untyped-call]


def _seconds(timeout: float) -> str:
    return f"{timeout:.10g}"


def _key(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")


def _watch_state(
    api: client.ApiClient,
    list_fn: ListFunction,
    selectors: Mapping[str, str],
    deadline: float,
    what: str,
    round_seconds: float | None = None,
) -> Generator[list[Obj], None, None]:
    """The watched set after the initial list and after every change, until the deadline passes.

    With `round_seconds`, each watch request ends after that long and the unchanged set is yielded again,
    so the caller can look at other objects between changes (the next watch resumes where this one ended).
    """
    objects: dict[str, Obj] = {}
    version: str | None = None
    broken = False  # the last watch broke before delivering anything
    while True:
        remaining = deadline - time.monotonic()
        try:
            if version is None:
                read_timeout = max(remaining, 1) + _READ_SLACK
                response = list_fn(**selectors, _preload_content=False, _request_timeout=read_timeout)
                body = json.loads(response.data)
                objects = {_key(o): o for o in body.get("items") or []}
                version = str((body.get("metadata") or {}).get("resourceVersion") or "")
                yield list(objects.values())
                remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            this_round = min(remaining, round_seconds) if round_seconds else remaining
            stream = _JsonWatch().events(
                list_fn,
                resource_version=version,
                allow_watch_bookmarks=True,
                timeout_seconds=max(1, math.ceil(this_round)),
                _request_timeout=this_round + _READ_SLACK,
                **selectors,
            )
            try:
                for event in stream:
                    broken = False
                    obj = event["object"]
                    version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                    if event["type"] == "BOOKMARK":
                        continue
                    if event["type"] == "DELETED":
                        objects.pop(_key(obj), None)
                    else:
                        objects[_key(obj)] = obj
                    yield list(objects.values())
                    if time.monotonic() >= deadline:
                        return
            finally:
                stream.close()
            if round_seconds and time.monotonic() < deadline:
                yield list(objects.values())  # a quiet round ended: the same set, for another look
        except ApiException as exc:
            if exc.status == 410:  # our resourceVersion left the server's window: list afresh
                version = None
                continue
            raise MeshbookError(f"cannot list or watch {what}: {api_message(exc)}") from None
        except Urllib3Error as exc:
            if version is None or broken or isinstance(exc, MaxRetryError):
                raise UnreachableError(f"cannot reach the cluster at {api.configuration.host}: {exc}") from None
            broken = True  # the stream broke mid-way: resume once from the last version seen
        if time.monotonic() >= deadline:
            return


def wait_for(
    api: client.ApiClient,
    resource: str | ListFunction,
    predicate: Predicate,
    *,
    description: str,
    timeout: float = 180.0,
    namespace: str | None = None,
    label_selector: str | None = None,
    field_selector: str | None = None,
    last_seen: Callable[[Sequence[Obj]], str] | None = None,
    give_up: Callable[[Sequence[Obj]], Hopeless | None] | None = None,
    recheck_every: float | None = None,
) -> list[Obj]:
    """Watch objects until `predicate` holds for the whole watched set; return that set.

    `give_up` sees every state too: when it names a reason, the wait ends at once with `WaitAbandoned`
    (the expectation can no longer hold, so the rest of the timeout would only delay the verdict). With
    `recheck_every` it also sees the unchanged set that often, for reasons found outside it (events).

    `resource` is a kind of `KINDS` (listed in `namespace`, None: all namespaces or cluster-scoped)
    or an official-client list function taking the selector keywords, its namespace bound (e.g. a
    `functools.partial` of `CustomObjectsApi.list_namespaced_custom_object`). The set holds API JSON
    dicts. On timeout, raises WaitTimeoutError: `timed out after Ns waiting for <description>; last
    seen: <last_seen(set)>` (default: the objects' names).
    """
    if callable(resource):
        if namespace is not None:
            raise ValueError("wait_for: bind the namespace into the list function instead of passing namespace")
        list_fn, what = resource, description
    else:
        list_fn = list_function(api, resource, namespace)
        what = f"{resource} objects" + (f" in namespace {namespace}" if namespace else "")
    selectors = {k: v for k, v in (("label_selector", label_selector), ("field_selector", field_selector)) if v}
    seen: Sequence[Obj] = []
    started = time.monotonic()
    with closing(_watch_state(api, list_fn, selectors, started + timeout, what, recheck_every)) as states:
        for state in states:
            seen = state
            if predicate(state):
                progress.report("wait_done", description=description)
                return state
            progress.report("wait", description=description, last_seen=last_seen(seen) if last_seen else _names(seen))
            hopeless = give_up(state) if give_up else None
            if hopeless:
                shown = last_seen(seen) if last_seen else _names(seen)
                raise WaitAbandoned(
                    f"gave up after {time.monotonic() - started:.1f}s waiting for {description}: {hopeless.reason}; "
                    f"last seen: {shown}",
                    hopeless,
                )
    shown = last_seen(seen) if last_seen else _names(seen)
    raise WaitTimeoutError(f"timed out after {_seconds(timeout)}s waiting for {description}; last seen: {shown}")


def every(seconds: float, ask: Callable[[], str | None]) -> Callable[[], str | None]:
    """`ask`, but at most once per `seconds` (None in between): for questions that cost an API call,
    asked from a wait that may see many events a second."""
    last = -math.inf

    def throttled() -> str | None:
        nonlocal last
        now = time.monotonic()
        if now - last < seconds:
            return None
        last = now
        return ask()

    return throttled


class HopelessKind(StrEnum):
    """Why waiting on pods stopped early: what a reader (and the explanation added to it) looks at."""

    CONTAINER = "container"  # a crash loop with its sidecars ready, or an image that cannot be pulled
    NOT_CREATED = "not-created"  # the controller cannot create the pods (the API server refuses them)
    NOT_STARTED = "not-started"  # a pod cannot start: a volume's Secret or ConfigMap stays missing


@dataclass(frozen=True)
class Hopeless:
    """A wait's reason to give up: its kind and the sentence that says it."""

    kind: HopelessKind
    reason: str

    def __str__(self) -> str:
        return self.reason


class HopelessPods:
    """When waiting on pods can no longer succeed, for `wait_for`'s `give_up`: a container in a crash loop
    (`podstatus.CrashHistory`, with `give_up_after_crashes`), fewer pods than `wanted` while
    `why_missing` names why the controller cannot create them, or pods that `why_not_started` says cannot
    start (a volume's source missing for long). The last two are asked at most every `RECHECK_SECONDS`
    (they cost API calls). The one rule for every wait on pods."""

    def __init__(
        self,
        give_up_after_crashes: int | None,
        wanted: int,
        why_missing: Callable[[], str | None] | None,
        why_not_started: Callable[[Sequence[Obj]], str | None] | None = None,
    ) -> None:
        self.crashes = CrashHistory(give_up_after_crashes) if give_up_after_crashes else None
        self.wanted = wanted
        self.why_missing = every(RECHECK_SECONDS, why_missing) if why_missing else None
        self.why_not_started = why_not_started
        self._not_started_asked = -math.inf
        # Missing or stuck pods bring no events to wake the wait: look again this often while asking why.
        self.recheck_every = RECHECK_SECONDS if why_missing or why_not_started else None

    def __call__(self, pods: Sequence[Mapping[str, Any]]) -> Hopeless | None:
        reason = self.crashes.hopeless(pods) if self.crashes else None
        if reason is not None:
            return Hopeless(HopelessKind.CONTAINER, reason)
        if len(pods) < self.wanted and self.why_missing is not None:
            reason = self.why_missing()
            if reason is not None:
                return Hopeless(HopelessKind.NOT_CREATED, reason)
        now = time.monotonic()
        if self.why_not_started is not None and pods and now - self._not_started_asked >= RECHECK_SECONDS:
            self._not_started_asked = now
            reason = self.why_not_started([dict(p) for p in pods])
            if reason is not None:
                return Hopeless(HopelessKind.NOT_STARTED, reason)
        return None


class WaitAbandoned(MeshbookError):
    """What was awaited cannot happen any more (e.g. a crash loop with its sidecars ready): the wait ended
    early. Raised where a WaitTimeoutError would be, and handled like one: the expectation failed."""

    exit_code = ExitCode.EXPECTATION_FAILED

    def __init__(self, message: str, cause: Hopeless) -> None:
        super().__init__(message)
        self.cause = cause


def _names(objects: Iterable[Mapping[str, Any]]) -> str:
    names = sorted(str((o.get("metadata") or {}).get("name")) for o in objects)
    return ", ".join(names) if names else "nothing"


# -- pods -------------------------------------------------------------------------------------------------


def wait_for_pods_ready(
    api: client.ApiClient,
    namespace: str,
    *,
    label_selector: str | None = None,
    count: int | None = None,
    timeout: float = 180.0,
    give_up_after_crashes: int | None = None,
    creation_failure: Callable[[], str | None] | None = None,
    start_failure: Callable[[Sequence[Obj]], str | None] | None = None,
) -> list[Obj]:
    """Wait until exactly `count` pods (default: at least one) match, all Ready and none terminating.

    Returns the pods as API JSON dicts, sorted by name. Ready is the pod's Ready condition, as
    `kubectl wait --for=condition=Ready`. With `give_up_after_crashes`, a container that crashed that
    many times in a row the same way (or an image that cannot be pulled) ends the wait early with
    `WaitAbandoned` (see `podstatus.CrashHistory`). `creation_failure`, asked every few seconds while
    pods are missing, ends it too when it names why the controller cannot create them; so does
    `start_failure`, asked as often with the pods, when it names why they cannot start
    (`rollouts.mount_failure`).
    """
    wanted = f"{count} Ready pod{'' if count == 1 else 's'}" if count is not None else "at least 1 Ready pod"
    where = f" with {label_selector}" if label_selector else ""

    def done(pods: Sequence[Obj]) -> bool:
        enough = len(pods) == count if count is not None else len(pods) >= 1
        return enough and all(is_ready(p) and not is_terminating(p) for p in pods)

    hopeless = HopelessPods(give_up_after_crashes, count if count is not None else 1, creation_failure, start_failure)

    pods = wait_for(
        api,
        "Pod",
        done,
        namespace=namespace,
        label_selector=label_selector,
        description=f"{wanted}{where} in namespace {namespace}",
        timeout=timeout,
        last_seen=describe_pods,
        give_up=hopeless,
        recheck_every=hopeless.recheck_every,
    )
    return sorted(pods, key=lambda p: str(p["metadata"]["name"]))


def wait_for_pod_ready(api: client.ApiClient, namespace: str, name: str, timeout: float = 180.0) -> Obj:
    """Wait until pod `namespace/name` exists and is Ready (and not terminating); return it."""
    pods = wait_for(
        api,
        "Pod",
        lambda pods: len(pods) == 1 and is_ready(pods[0]),
        namespace=namespace,
        field_selector=f"metadata.name={name}",
        description=f"pod {namespace}/{name} to be Ready",
        timeout=timeout,
        last_seen=lambda pods: describe_pods(pods) if pods else f"no pod {name}",
    )
    return pods[0]


def wait_for_deletion(
    api: client.ApiClient, namespace: str | None, kind: str, names: str | Iterable[str], timeout: float = 180.0
) -> None:
    """Wait until no object of `kind` named in `names` exists in `namespace` (None: cluster-scoped kinds)."""
    wanted = {names} if isinstance(names, str) else set(names)
    where = f" in namespace {namespace}" if namespace else ""

    def present(objects: Sequence[Obj]) -> list[Obj]:
        return [o for o in objects if (o.get("metadata") or {}).get("name") in wanted]

    def last_seen(objects: Sequence[Obj]) -> str:
        still = present(objects)
        if kind == "Pod":
            return describe_pods(still)
        return ", ".join(
            sorted(f"{o['metadata']['name']}{' (Terminating)' if is_terminating(o) else ''}" for o in still)
        )

    wait_for(
        api,
        kind,
        lambda objects: not present(objects),
        namespace=namespace,
        description=f"{kind} {', '.join(sorted(wanted))}{where} to be deleted",
        timeout=timeout,
        last_seen=last_seen,
    )
