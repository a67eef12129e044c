"""Object storage for the sandbox: every object in memory, written through to SQLite (WAL).

One global resourceVersion counter orders every change, as etcd's revision does for a real API server.
Changes are kept in a bounded event window so watches can resume from a resourceVersion; older ones get
410 Expired, exactly the contract clients (kubectl, informers) are written against. The store is used
from one asyncio event loop only, so it needs no locks.

Stored dicts are shared, not copied, on reads: callers must treat them as read-only and write back a
new dict (`copy.deepcopy` first) through `create`/`update`.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshbook.sandbox.clock import current as current_clock
from meshbook.sandbox.storage.resources import ResourceType

Object = dict[str, Any]

WATCH_WINDOW = 100_000  # events kept for resuming watches

# etcd's `--max-request-bytes` default: a write whose request is larger fails in etcd, and kube-apiserver
# passes the etcd error through as a 500 without a reason (kubernetes/kubernetes#112152). The request
# holds the key twice (compare and put) and the value once, plus a little framing (_TXN_FRAMING, an
# estimate). The value here is the stored JSON, a little larger than the protobuf kube-apiserver stores
# for built-in kinds, so an object within a few percent of the limit may be refused here and not there.
ETCD_MAX_REQUEST_BYTES = 1536 * 1024
_TXN_FRAMING = 64


class StoreError(Exception):
    """An API-level failure; `reason` and `code` become the Status object on the wire."""

    def __init__(self, reason: str, code: int, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.code = code
        self.message = message
        self.details = details or {}


def _object_error(reason: str, code: int, rt: ResourceType, name: str, message: str) -> StoreError:
    """A Status about one object; `message` may use {resource} (e.g. `deployments.apps`) and {name}."""
    resource = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
    details = {"name": name, "group": rt.group, "kind": rt.plural}
    return StoreError(reason, code, message.format(resource=resource, name=name), details)


def not_found(rt: ResourceType, name: str) -> StoreError:
    return _object_error("NotFound", 404, rt, name, '{resource} "{name}" not found')


def already_exists(rt: ResourceType, name: str) -> StoreError:
    return _object_error("AlreadyExists", 409, rt, name, '{resource} "{name}" already exists')


def conflict(rt: ResourceType, name: str) -> StoreError:
    return _object_error(
        "Conflict",
        409,
        rt,
        name,
        'Operation cannot be fulfilled on {resource} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
    )


def request_too_large() -> StoreError:
    """What kube-apiserver answers when etcd refuses a write for its size."""
    return StoreError("", 500, "etcdserver: request is too large")


def etcd_key(rt: ResourceType, namespace: str, name: str) -> str:
    """The object's etcd key as kube-apiserver builds it (`/registry/<resource>/[<namespace>/]<name>`)."""
    resource = f"{rt.group}/{rt.plural}" if rt.custom else rt.plural
    return f"/registry/{resource}/{namespace}/{name}" if namespace else f"/registry/{resource}/{name}"


def now_rfc3339() -> str:
    """Now on the sandbox's clock (simulated at `instant` speed), as objects store it; see `clock.py`."""
    return current_clock().now().strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class WatchEvent:
    """One change: `object` is the new state (the last state for DELETED), `old` the previous one."""

    type: str  # ADDED, MODIFIED, DELETED
    rt_key: str
    object: Object
    old: Object | None
    rv: int


@dataclass
class Watcher:
    """A subscription: events pass `accepts` and land in `queue`; None in the queue ends the watch."""

    rt_key: str
    accepts: Callable[[WatchEvent], WatchEvent | None]
    queue: asyncio.Queue[WatchEvent | None] = field(default_factory=asyncio.Queue)


class Store:
    def __init__(self, path: Path | None = None) -> None:
        self._objects: dict[str, dict[tuple[str, str], Object]] = {}
        self._rv = 0
        self._db: sqlite3.Connection | None = None
        if path is not None:
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS objects (rt TEXT, namespace TEXT, name TEXT, body TEXT, "
                "PRIMARY KEY (rt, namespace, name))"
            )
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self._load()
        self._window: deque[WatchEvent] = deque(maxlen=WATCH_WINDOW)
        self._window_start = self._rv  # events after this rv are all in the window
        self._watchers: list[Watcher] = []
        self._listeners: list[Callable[[WatchEvent], None]] = []

    def _load(self) -> None:
        assert self._db is not None
        row = self._db.execute("SELECT value FROM meta WHERE key = 'rv'").fetchone()
        self._rv = int(row[0]) if row else 0
        for rt_key, namespace, name, body in self._db.execute("SELECT rt, namespace, name, body FROM objects"):
            self._objects.setdefault(rt_key, {})[(namespace, name)] = json.loads(body)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self.end_watches()

    def end_watches(self) -> None:
        for watcher in list(self._watchers):
            watcher.queue.put_nowait(None)
        self._watchers.clear()

    @property
    def resource_version(self) -> int:
        return self._rv

    # -- reads -------------------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str, name: str) -> Object | None:
        return self._objects.get(rt.storage_key, {}).get((namespace if rt.namespaced else "", name))

    def require(self, rt: ResourceType, namespace: str, name: str) -> Object:
        found = self.get(rt, namespace, name)
        if found is None:
            raise not_found(rt, name)
        return found

    def list(self, rt: ResourceType, namespace: str | None = None) -> list[Object]:
        """Objects of a type, optionally in one namespace, sorted by namespace and name like etcd keys."""
        bucket = self._objects.get(rt.storage_key, {})
        if namespace is not None and rt.namespaced:
            keys = sorted(k for k in bucket if k[0] == namespace)
        else:
            keys = sorted(bucket)
        return [bucket[k] for k in keys]

    def iter_all(self, rt_key: str) -> Iterator[Object]:
        yield from self._objects.get(rt_key, {}).values()

    # -- writes ------------------------------------------------------------------------------------

    def create(self, rt: ResourceType, obj: Object) -> Object:
        meta = obj.setdefault("metadata", {})
        namespace = meta.get("namespace", "") if rt.namespaced else ""
        name = meta["name"]
        bucket = self._objects.setdefault(rt.storage_key, {})
        if (namespace, name) in bucket:
            raise already_exists(rt, name)
        meta["uid"] = meta.get("uid") or str(uuid.uuid4())  # admission may have assigned it (a Job's selector)
        meta["creationTimestamp"] = now_rfc3339()
        meta.setdefault("generation", 1)
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        self._commit(rt, namespace, name, obj, "ADDED", None)
        return obj

    def update(self, rt: ResourceType, obj: Object, *, expect_rv: str | None = None) -> Object:
        """Replace an object; `expect_rv` (from the client) must match the stored one, or 409 Conflict."""
        meta = obj["metadata"]
        namespace = meta.get("namespace", "") if rt.namespaced else ""
        name = meta["name"]
        old = self.get(rt, namespace, name)
        if old is None:
            raise not_found(rt, name)
        if expect_rv and expect_rv != old["metadata"]["resourceVersion"]:
            raise conflict(rt, name)
        for key in ("uid", "creationTimestamp"):
            meta[key] = old["metadata"][key]
        meta["generation"] = old["metadata"].get("generation", 1)
        if _spec_changed(old, obj):
            meta["generation"] += 1
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        if {**obj, "metadata": {**meta, "resourceVersion": old["metadata"]["resourceVersion"]}} == old:
            return old  # no-op updates do not move the resourceVersion, as on a real API server
        self._commit(rt, namespace, name, obj, "MODIFIED", old)
        return obj

    def delete(self, rt: ResourceType, namespace: str, name: str) -> Object:
        key = (namespace if rt.namespaced else "", name)
        bucket = self._objects.get(rt.storage_key, {})
        old = bucket.get(key)
        if old is None:
            raise not_found(rt, name)
        del bucket[key]
        self._rv += 1
        last = {**old, "metadata": {**old["metadata"], "resourceVersion": str(self._rv)}}
        if self._db is not None:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM objects WHERE rt = ? AND namespace = ? AND name = ?", (rt.storage_key, *key))
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('rv', ?)", (str(self._rv),))
            self._db.execute("COMMIT")
        self._emit(WatchEvent("DELETED", rt.storage_key, last, old, self._rv))
        return last

    def _commit(self, rt: ResourceType, namespace: str, name: str, obj: Object, kind: str, old: Object | None) -> None:
        obj["metadata"]["resourceVersion"] = str(self._rv + 1)
        body = json.dumps(obj, separators=(",", ":"))
        key = etcd_key(rt, namespace, name)
        if len(body.encode()) + 2 * len(key.encode()) + _TXN_FRAMING > ETCD_MAX_REQUEST_BYTES:
            raise request_too_large()  # nothing stored, the counter unmoved, as when etcd refuses
        self._rv += 1
        self._objects.setdefault(rt.storage_key, {})[(namespace, name)] = obj
        if self._db is not None:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT OR REPLACE INTO objects VALUES (?, ?, ?, ?)",
                (rt.storage_key, namespace, name, body),
            )
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('rv', ?)", (str(self._rv),))
            self._db.execute("COMMIT")
        self._emit(WatchEvent(kind, rt.storage_key, obj, old, self._rv))

    # -- change notification -----------------------------------------------------------------------

    def _emit(self, event: WatchEvent) -> None:
        if len(self._window) == self._window.maxlen:
            self._window_start = self._window[0].rv
        self._window.append(event)
        for watcher in self._watchers:
            if watcher.rt_key == event.rt_key:
                delivered = watcher.accepts(event)
                if delivered is not None:
                    watcher.queue.put_nowait(delivered)
        for listener in list(self._listeners):
            listener(event)

    def add_listener(self, listener: Callable[[WatchEvent], None]) -> None:
        """In-process subscribers (controllers) see every change synchronously, in order."""
        self._listeners.append(listener)

    def watch(self, watcher: Watcher, since_rv: int | None) -> None:
        """Start a watch after `since_rv` (None: synthetic ADDED events for current objects first).

        Raises StoreError 410 when events after `since_rv` are no longer in the window.
        """
        if since_rv is None:
            for obj in self.iter_all(watcher.rt_key):
                event = watcher.accepts(WatchEvent("ADDED", watcher.rt_key, obj, None, self._rv))
                if event is not None:
                    watcher.queue.put_nowait(event)
        else:
            if since_rv < self._window_start or since_rv > self._rv:
                raise StoreError("Expired", 410, f"too old resource version: {since_rv} ({self._window_start + 1})")
            for past in self._window:
                if past.rv > since_rv and past.rt_key == watcher.rt_key:
                    event = watcher.accepts(past)
                    if event is not None:
                        watcher.queue.put_nowait(event)
        self._watchers.append(watcher)

    def stop_watch(self, watcher: Watcher) -> None:
        if watcher in self._watchers:
            self._watchers.remove(watcher)


def _spec_changed(old: Object, new: Object) -> bool:
    """Generation moves when anything but metadata and status changes (as for built-in kinds)."""
    ignored = {"metadata", "status", "apiVersion", "kind"}
    keys = (set(old) | set(new)) - ignored
    return any(old.get(k) != new.get(k) for k in keys)
