"""The sandbox's object store on its own: resourceVersions, the watch window, durability, conflicts."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from meshbook.sandbox.storage import store as store_module
from meshbook.sandbox.storage.resources import ResourceRegistry, ResourceType
from meshbook.sandbox.storage.store import Object, Store, StoreError, Watcher, WatchEvent

_REGISTRY = ResourceRegistry()


def _rt(group: str, plural: str) -> ResourceType:
    rt = _REGISTRY.lookup(group, "v1", plural)
    assert rt is not None
    return rt


CONFIGMAPS = _rt("", "configmaps")
SECRETS = _rt("", "secrets")
DEPLOYMENTS = _rt("apps", "deployments")


def _configmap(name: str, namespace: str = "ns", **data: str) -> Object:
    return {"metadata": {"name": name, "namespace": namespace}, "data": dict(data)}


def _deployment(name: str, replicas: int = 1) -> Object:
    return {
        "metadata": {"name": name, "namespace": "ns", "labels": {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}},
        "status": {},
    }


def _watcher(rt: ResourceType) -> Watcher:
    return Watcher(rt.storage_key, lambda event: event)


def _drain(watcher: Watcher) -> list[tuple[str, str, int]]:
    """(type, name, rv) of every event queued so far, in order."""
    out: list[tuple[str, str, int]] = []
    while True:
        try:
            event = watcher.queue.get_nowait()
        except asyncio.QueueEmpty:
            return out
        assert event is not None
        out.append((event.type, event.object["metadata"]["name"], event.rv))


def _rv(obj: Object) -> int:
    return int(obj["metadata"]["resourceVersion"])


@pytest.fixture
def small_window(monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """An in-memory store that keeps only the last 3 events for resuming watches."""
    monkeypatch.setattr(store_module, "WATCH_WINDOW", 3)
    store = Store()
    assert store._window.maxlen == 3
    try:
        yield store
    finally:
        store.close()


def test_resource_versions_grow_by_one_per_change_across_types() -> None:
    store = Store()
    a = store.create(CONFIGMAPS, _configmap("a"))
    s = store.create(SECRETS, {"metadata": {"name": "s", "namespace": "ns"}})
    updated = store.update(CONFIGMAPS, {**copy.deepcopy(a), "data": {"k": "v"}})
    gone = store.delete(SECRETS, "ns", "s")
    assert [_rv(a), _rv(s), _rv(updated), _rv(gone)] == [1, 2, 3, 4]
    assert store.resource_version == 4
    assert a["apiVersion"] == "v1" and a["kind"] == "ConfigMap"
    assert a["metadata"]["uid"] and a["metadata"]["creationTimestamp"]
    assert store.get(SECRETS, "ns", "s") is None


def test_resume_from_a_resource_version_gives_the_later_events_in_order(small_window: Store) -> None:
    store = small_window
    store.create(CONFIGMAPS, _configmap("a"))  # rv 1
    b = store.create(CONFIGMAPS, _configmap("b"))  # rv 2
    store.create(SECRETS, {"metadata": {"name": "other-type", "namespace": "ns"}})  # rv 3, not a configmap
    store.update(CONFIGMAPS, {**copy.deepcopy(b), "data": {"x": "1"}})  # rv 4
    store.delete(CONFIGMAPS, "ns", "a")  # rv 5; the window now holds rv 3, 4, 5
    watcher = _watcher(CONFIGMAPS)
    store.watch(watcher, since_rv=2)  # the oldest resumable point: every event after it is kept
    assert _drain(watcher) == [("MODIFIED", "b", 4), ("DELETED", "a", 5)]
    # The watch stays registered: later changes are delivered live, in order.
    store.create(CONFIGMAPS, _configmap("c"))
    store.delete(CONFIGMAPS, "ns", "b")
    assert _drain(watcher) == [("ADDED", "c", 6), ("DELETED", "b", 7)]
    store.stop_watch(watcher)
    store.create(CONFIGMAPS, _configmap("d"))
    assert _drain(watcher) == []


def test_resume_from_the_current_resource_version_gives_nothing_until_a_change(small_window: Store) -> None:
    store = small_window
    for name in "abcde":
        store.create(CONFIGMAPS, _configmap(name))
    watcher = _watcher(CONFIGMAPS)
    store.watch(watcher, since_rv=store.resource_version)
    assert _drain(watcher) == []
    store.create(CONFIGMAPS, _configmap("f"))
    assert _drain(watcher) == [("ADDED", "f", 6)]


def test_a_resource_version_older_than_the_window_is_410_expired(small_window: Store) -> None:
    store = small_window
    for name in "abcde":  # rv 1..5; the window keeps rv 3, 4, 5
        store.create(CONFIGMAPS, _configmap(name))
    watcher = _watcher(CONFIGMAPS)
    with pytest.raises(StoreError) as caught:
        store.watch(watcher, since_rv=1)  # rv 2 is no longer known
    assert caught.value.code == 410
    assert caught.value.reason == "Expired"
    assert caught.value.message.startswith("too old resource version: 1 (")
    assert _drain(watcher) == []
    store.create(CONFIGMAPS, _configmap("f"))
    assert _drain(watcher) == []  # a refused watch is not registered


def test_a_watch_without_resource_version_starts_with_synthetic_added_events() -> None:
    store = Store()
    store.create(CONFIGMAPS, _configmap("b"))
    store.create(CONFIGMAPS, _configmap("a"))
    store.create(SECRETS, {"metadata": {"name": "s", "namespace": "ns"}})
    watcher = _watcher(CONFIGMAPS)
    store.watch(watcher, since_rv=None)
    events = _drain(watcher)
    assert sorted((kind, name) for kind, name, _ in events) == [("ADDED", "a"), ("ADDED", "b")]
    assert {rv for _, _, rv in events} == {3}  # the store's resourceVersion when the watch started


def test_objects_and_resource_version_survive_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    first = Store(path)
    kept = first.create(CONFIGMAPS, _configmap("kept", k="v1"))
    kept = first.update(CONFIGMAPS, {**copy.deepcopy(kept), "data": {"k": "v2"}})
    first.create(CONFIGMAPS, _configmap("dropped"))
    first.delete(CONFIGMAPS, "ns", "dropped")
    deploy = first.create(DEPLOYMENTS, _deployment("web"))
    other_ns = first.create(CONFIGMAPS, _configmap("kept", namespace="other", k="x"))
    before_rv = first.resource_version
    assert before_rv == 6
    snapshot = copy.deepcopy([kept, deploy, other_ns])
    first.close()

    second = Store(path)
    try:
        assert second.resource_version == before_rv
        assert second.get(CONFIGMAPS, "ns", "kept") == snapshot[0]
        assert second.get(DEPLOYMENTS, "ns", "web") == snapshot[1]
        assert second.get(CONFIGMAPS, "other", "kept") == snapshot[2]
        assert second.get(CONFIGMAPS, "ns", "dropped") is None
        assert [o["metadata"]["name"] for o in second.list(CONFIGMAPS, "ns")] == ["kept"]
        # The counter continues where it stopped: no resourceVersion is ever handed out twice.
        created = second.create(CONFIGMAPS, _configmap("new"))
        assert _rv(created) == before_rv + 1
        # Events from before the restart are gone: resuming from an older resourceVersion is 410.
        with pytest.raises(StoreError) as caught:
            second.watch(_watcher(CONFIGMAPS), since_rv=before_rv - 1)
        assert caught.value.code == 410 and caught.value.reason == "Expired"
    finally:
        second.close()
    third = Store(path)
    try:
        assert third.resource_version == before_rv + 1
        assert third.get(CONFIGMAPS, "ns", "new") is not None
    finally:
        third.close()


def test_a_no_op_update_keeps_the_resource_version_and_emits_nothing() -> None:
    store = Store()
    created = store.create(CONFIGMAPS, _configmap("a", k="v"))
    watcher = _watcher(CONFIGMAPS)
    store.watch(watcher, since_rv=store.resource_version)
    same = store.update(CONFIGMAPS, copy.deepcopy(created))
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"] == "1"
    without_rv = copy.deepcopy(created)
    del without_rv["metadata"]["resourceVersion"]
    assert store.update(CONFIGMAPS, without_rv)["metadata"]["resourceVersion"] == "1"
    assert store.resource_version == 1
    assert _drain(watcher) == []
    changed = store.update(CONFIGMAPS, {**copy.deepcopy(created), "data": {"k": "w"}})
    assert changed["metadata"]["resourceVersion"] == "2"
    assert _drain(watcher) == [("MODIFIED", "a", 2)]


def test_generation_moves_only_when_the_spec_changes() -> None:
    store = Store()
    deploy = store.create(DEPLOYMENTS, _deployment("web"))
    assert deploy["metadata"]["generation"] == 1

    def changed(obj: Object, **fields: Any) -> Object:
        out = copy.deepcopy(obj)
        out.update(fields)
        return out

    labelled = changed(deploy)
    labelled["metadata"]["labels"] = {"app": "web", "tier": "front"}
    labelled = store.update(DEPLOYMENTS, labelled)
    assert (labelled["metadata"]["generation"], _rv(labelled)) == (1, 2)
    with_status = store.update(DEPLOYMENTS, changed(labelled, status={"replicas": 1}))
    assert (with_status["metadata"]["generation"], _rv(with_status)) == (1, 3)
    scaled = store.update(DEPLOYMENTS, changed(with_status, spec={**with_status["spec"], "replicas": 3}))
    assert (scaled["metadata"]["generation"], _rv(scaled)) == (2, 4)
    # A client cannot set the generation itself: the store keeps counting from the stored one.
    forged = changed(scaled, spec={**scaled["spec"], "replicas": 4})
    forged["metadata"]["generation"] = 40
    assert store.update(DEPLOYMENTS, forged)["metadata"]["generation"] == 3


def test_a_stale_expected_resource_version_is_409_conflict() -> None:
    store = Store()
    created = store.create(CONFIGMAPS, _configmap("a", k="1"))
    stale_rv = created["metadata"]["resourceVersion"]
    current = store.update(CONFIGMAPS, {**copy.deepcopy(created), "data": {"k": "2"}}, expect_rv=stale_rv)
    assert _rv(current) == 2
    with pytest.raises(StoreError) as caught:
        store.update(CONFIGMAPS, {**copy.deepcopy(created), "data": {"k": "3"}}, expect_rv=stale_rv)
    assert caught.value.code == 409
    assert caught.value.reason == "Conflict"
    assert caught.value.message == (
        'Operation cannot be fulfilled on configmaps "a": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert caught.value.details == {"name": "a", "group": "", "kind": "configmaps"}
    stored = store.get(CONFIGMAPS, "ns", "a")
    assert stored is not None and stored["data"] == {"k": "2"} and store.resource_version == 2
    latest = store.update(CONFIGMAPS, {**copy.deepcopy(current), "data": {"k": "3"}}, expect_rv="2")
    assert (_rv(latest), latest["data"]) == (3, {"k": "3"})


def test_missing_and_duplicate_objects() -> None:
    store = Store()
    store.create(DEPLOYMENTS, _deployment("web"))
    with pytest.raises(StoreError) as caught:
        store.create(DEPLOYMENTS, _deployment("web"))
    assert (caught.value.code, caught.value.reason) == (409, "AlreadyExists")
    assert caught.value.message == 'deployments.apps "web" already exists'
    calls: tuple[Callable[[], object], ...] = (
        lambda: store.update(DEPLOYMENTS, _deployment("nope")),
        lambda: store.delete(DEPLOYMENTS, "ns", "nope"),
        lambda: store.require(DEPLOYMENTS, "ns", "nope"),
    )
    for call in calls:
        with pytest.raises(StoreError) as caught:
            call()
        assert (caught.value.code, caught.value.reason) == (404, "NotFound")
        assert caught.value.message == 'deployments.apps "nope" not found'
    assert store.resource_version == 1


def test_listeners_see_every_change_with_the_previous_state() -> None:
    store = Store()
    seen: list[WatchEvent] = []
    store.add_listener(seen.append)
    a = store.create(CONFIGMAPS, _configmap("a", k="1"))
    store.update(CONFIGMAPS, {**copy.deepcopy(a), "data": {"k": "2"}})
    store.delete(CONFIGMAPS, "ns", "a")
    assert [(e.type, e.rv) for e in seen] == [("ADDED", 1), ("MODIFIED", 2), ("DELETED", 3)]
    assert seen[1].old is not None and seen[1].old["data"] == {"k": "1"}
    assert seen[2].object["metadata"]["resourceVersion"] == "3" and seen[2].object["data"] == {"k": "2"}
