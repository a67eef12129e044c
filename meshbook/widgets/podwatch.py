"""The panel's live pod table: a watch in a background thread, rows with kubectl's READY and STATUS.

The thread runs `meshbook.kube.waits.wait_for` (list, then watch from that resourceVersion, resume, 410
re-list) over every namespace, with a predicate that hands each new set of pods to a callback and never
holds, so the watch runs until stopped. `stop()` sets a flag and shuts the open watch response's socket
down (urllib3 `HTTPResponse.shutdown`), so the thread ends at once rather than at the next event.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pandas as pd
from kubernetes import client

from meshbook.errors import WaitTimeoutError
from meshbook.kube.pods import pod_rows, rows_frame

Obj = dict[str, Any]

POD_COLUMNS = ("namespace", "pod", "ready", "status", "phase", "sidecar", "restarts")


def pods_frame(pods: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """`kubectl get pods`-style rows (columns: `POD_COLUMNS`); `sidecar` is the Istio mode or `-`."""
    rows = pod_rows(pods)
    frame = rows_frame(rows)
    frame["sidecar"] = [str(r.sidecar_mode) if r.sidecar_mode is not None else "-" for r in rows]
    return frame[list(POD_COLUMNS)].reset_index(drop=True)


class _Stopped(Exception):
    """Raised inside the watch's list call once the watch was asked to stop."""


class PodWatch:
    """Watches pods in `namespaces` (empty: all) and calls `on_change(pods)` after the list and every event."""

    def __init__(
        self,
        api: client.ApiClient,
        namespaces: Sequence[str],
        on_change: Callable[[list[Obj]], None],
        on_error: Callable[[str], None] | None = None,
        *,
        window: float = 3600.0,
    ) -> None:
        self._api = client.ApiClient(configuration=api.configuration)  # its own connections, closed on stop
        self._namespaces = frozenset(namespaces)
        self._on_change = on_change
        self._on_error = on_error
        self._window = window
        self._stop = threading.Event()
        self._response: Any = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="meshbook-pod-watch", daemon=True)
        self.error: str | None = None

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> PodWatch:
        self._thread.start()
        return self

    def _list(self, **kwargs: Any) -> Any:
        if self._stop.is_set():
            raise _Stopped
        response = client.CoreV1Api(self._api).list_pod_for_all_namespaces(**kwargs)
        if kwargs.get("watch"):
            with self._lock:
                self._response = response
            if self._stop.is_set():  # stop() ran while the request was on its way
                self._shutdown()
        return response

    def _seen(self, pods: Sequence[Obj]) -> bool:
        if self._stop.is_set():
            return True
        wanted = [
            p for p in pods if not self._namespaces or (p.get("metadata") or {}).get("namespace") in self._namespaces
        ]
        self._on_change(wanted)
        return False

    def _run(self) -> None:
        from meshbook.kube.waits import wait_for

        while not self._stop.is_set():
            try:
                wait_for(self._api, self._list, self._seen, description="pods for the panel", timeout=self._window)
            except WaitTimeoutError:
                continue  # the window ended quietly: watch on
            except _Stopped:
                break
            except Exception as exc:  # the cluster went away: say so in the panel, end the thread
                if self._stop.is_set():
                    break
                self.error = f"pod watch stopped: {exc}"
                if self._on_error is not None:
                    self._on_error(self.error)
                break

    def _shutdown(self) -> None:
        with self._lock:
            response = self._response
        if response is not None:
            with contextlib.suppress(Exception):
                response.shutdown()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop watching; True when the thread ended within `timeout` seconds."""
        self._stop.set()
        self._shutdown()
        if self._thread.is_alive():
            self._thread.join(timeout)
        stopped = not self._thread.is_alive()
        if stopped:
            self._api.close()  # type: ignore[no-untyped-call]
        return stopped
