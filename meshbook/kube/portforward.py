"""A local port that forwards to a pod's port through the API server (`pods/portforward`).

`kubernetes.stream.portforward` gives one WebSocket per connection; clients such as hvac want a plain
TCP address, so `PortForwarder` listens on 127.0.0.1 and pumps each accepted connection through its own
port-forward, like `kubectl port-forward` does.
"""

from __future__ import annotations

import contextlib
import json
import re
import selectors
import socket
import threading
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import portforward

_CHUNK = 64 * 1024


def _handshake_reason(text: str) -> str:
    """`HTTP 404: pods "x" not found` from the WebSocket client's handshake failure text, else the text."""
    status = re.search(r"Handshake status (\d+)", text)
    start = text.find('{"kind":"Status"')
    if status and start >= 0:
        with contextlib.suppress(ValueError):
            message = json.JSONDecoder().raw_decode(text[start:])[0].get("message")
            if message:
                return f"HTTP {status.group(1)}: {message}"
    return text


class PortForwarder:
    """127.0.0.1:<free port> -> pod:port through the API server, one port-forward WebSocket per connection.

    `kubernetes.stream.portforward` swaps `call_api` on the ApiClient it is given while it connects, so the
    forwarder uses its own ApiClient and connects one WebSocket at a time; the caller's client is untouched.
    """

    def __init__(self, api: client.ApiClient, namespace: str, pod: str, port: int, timeout: float) -> None:
        self.namespace = namespace
        self.pod = pod
        self.port = port
        self.timeout = timeout
        self.last_error: str | None = None
        self._api = client.ApiClient(configuration=api.configuration)
        self._core = client.CoreV1Api(self._api)
        self._connect_lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.setblocking(False)
        self.local_port: int = self._listener.getsockname()[1]
        # Writing one byte to _wake makes _woken readable for good: every selector that watches it stops.
        self._woken, self._wake = socket.socketpair()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._accepter = threading.Thread(
            target=self._accept_loop, name=f"meshbook port-forward {namespace}/{pod}:{port}", daemon=True
        )
        self._accepter.start()

    @property
    def target(self) -> str:
        return f"{self.namespace}/{self.pod}:{self.port}"

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._listener, selectors.EVENT_READ)
            sel.register(self._woken, selectors.EVENT_READ)
            while True:
                for key, _ in sel.select():
                    if key.fileobj is self._woken:
                        return
                    try:
                        conn, _addr = self._listener.accept()
                    except BlockingIOError:
                        continue
                    conn.setblocking(True)
                    worker = threading.Thread(target=self._serve, args=(conn,), daemon=True)
                    self._threads = [t for t in self._threads if t.is_alive()] + [worker]
                    worker.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with self._connect_lock:
                forward = portforward(
                    self._core.connect_get_namespaced_pod_portforward,
                    self.pod,
                    self.namespace,
                    ports=str(self.port),
                    _request_timeout=self.timeout,
                )
        except ApiException as exc:
            self.last_error = (
                f"port-forward to {self.target} failed: {_handshake_reason(str(exc.reason or exc.status))}"
            )
            conn.close()
            return
        except Exception as exc:  # websocket/ssl errors surface here too
            self.last_error = f"port-forward to {self.target} failed: {type(exc).__name__}: {exc}"
            conn.close()
            return
        remote = forward.socket(self.port)
        try:
            self._pump(conn, remote)
        finally:
            error = forward.error(self.port)
            if error:
                self.last_error = f"port-forward to {self.target}: {error.strip()}"
            with contextlib.suppress(OSError):
                conn.close()
            with contextlib.suppress(OSError):
                forward.close()

    def _pump(self, conn: socket.socket, remote: Any) -> None:
        """Copy bytes both ways until either side closes or the forwarder stops."""
        peers = {conn.fileno(): remote, remote.fileno(): conn}
        with selectors.DefaultSelector() as sel:
            sel.register(conn, selectors.EVENT_READ)
            sel.register(remote, selectors.EVENT_READ)
            sel.register(self._woken, selectors.EVENT_READ)
            while True:
                for key, _ in sel.select():
                    if key.fileobj is self._woken:
                        return
                    source = key.fileobj
                    try:
                        data = source.recv(_CHUNK)  # type: ignore[union-attr]
                        if not data:
                            return
                        peers[key.fd].sendall(data)
                    except OSError:
                        return

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._wake.send(b"x")
        self._accepter.join(timeout=self.timeout)
        for worker in list(self._threads):
            worker.join(timeout=self.timeout)
        for sock in (self._listener, self._wake, self._woken):
            with contextlib.suppress(OSError):
                sock.close()
        self._api.close()  # type: ignore[no-untyped-call]
