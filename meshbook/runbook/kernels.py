"""The kernels notebooks run in: this very Python, over IPC, managed asynchronously so none can hang a run.

A run-scoped kernelspec points at `sys.executable`, so notebooks import the meshbook being run. Kernel
channels are ZeroMQ over IPC sockets in the run's private temporary directory (no TCP port on the host).
The manager is jupyter_client's `AsyncKernelManager`: nbclient then polls the kernel's liveness while it
waits for output, so a kernel killed mid-cell ends the notebook within seconds (`DeadKernelError`) and
a frozen one (SIGSTOP, a deadlock) runs into the cell timeout instead of blocking the run forever.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from queue import Empty
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync

KERNEL_NAME = "meshbook"
# What a kernel imports before it runs its notebook: what the notebooks import (the session behind
# `runbook.start`, the panel) and the Kubernetes API classes their calls load on first use, so its cost
# is paid while the notebook before runs. Only sys.modules changes; the notebook's namespace starts empty.
# The collector pauses meanwhile (its passes over the growing heap of the imports cost about a tenth of
# their CPU), and what they built is frozen out of its later passes, as the sandbox server does.
PRELOAD = (
    "import gc",
    "gc.disable()",
    "import meshbook.runbook.session",
    "import meshbook.widgets",
    "meshbook.kube.client.load_api_classes()",
    "gc.freeze()",
    "gc.enable()",
    "del gc, meshbook",
)
_IPC_DIR = "MESHBOOK_IPC_DIR"
# A headless run's kernels keep no IPython history. Every kernel otherwise writes each cell it runs to
# the user's one `history.sqlite`; the kernels a run starts ahead (and those of parallel runs) then
# contend for its lock, and the loser prints "OperationalError('database is locked')" into a notebook's
# output. A runbook's cells are its record; the user's interactive history is not the place for them.
NO_HISTORY = ("--HistoryManager.enabled=False",)


@contextmanager
def kernelspec() -> Iterator[Path]:
    """A kernelspec for this interpreter, so notebooks import the meshbook being run (not another one).

    Yields the run's private temporary directory (kernel sockets, progress), removed when the run ends."""
    with tempfile.TemporaryDirectory(prefix="meshbook-kernels-") as tmp:
        spec_dir = Path(tmp) / "kernels" / KERNEL_NAME
        spec_dir.mkdir(parents=True)
        spec = {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}", *NO_HISTORY],
            "display_name": "meshbook",
            "language": "python",
            "metadata": {"debugger": False},
        }
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        saved = {key: os.environ.get(key) for key in ("JUPYTER_PATH", _IPC_DIR)}
        os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (tmp, saved["JUPYTER_PATH"]) if p)
        os.environ[_IPC_DIR] = tmp
        try:
            yield Path(tmp)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


IOPUB_CHECK_SECONDS = 0.2  # jupyter_client's wait for a first IOPub message after a kernel_info reply
SHELL_WAIT_SECONDS = 1.0  # how long one kernel_info request waits for its reply before another is sent


class ReadyClient(AsyncKernelClient):
    """A client whose wait for the kernel ends when the kernel is idle after answering kernel_info.

    jupyter_client's own wait then drains IOPub until it stays silent for 0.2 s: a fixed 0.2 s before
    every notebook's first cell. The kernel ends every request with `status: idle` on IOPub, so the
    wait ends on that message (proof that IOPub is connected too); messages of earlier requests that
    are still queued are told apart by their parent, as nbclient tells them apart."""

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while True:
            request = self.kernel_info()
            if await self._answered(request, min(SHELL_WAIT_SECONDS, max(deadline - time.monotonic(), 0.01))):
                return
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")

    async def _answered(self, request: str, wait: float) -> bool:
        """Whether the kernel answered this kernel_info request and then went idle on IOPub."""
        try:
            while True:
                reply = await self.shell_channel.get_msg(timeout=wait)
                if reply["msg_type"] == "kernel_info_reply" and reply["parent_header"].get("msg_id") == request:
                    break
            while True:  # a lost subscription (ZeroMQ's slow joiner) shows as silence: ask again
                message = await self.iopub_channel.get_msg(timeout=IOPUB_CHECK_SECONDS)
                idle = message["msg_type"] == "status" and message["content"].get("execution_state") == "idle"
                if idle and message["parent_header"].get("msg_id") == request:
                    break
        except Empty:
            return False
        self._handle_kernel_info_reply(reply)
        return True


class IPCKernelManager(AsyncKernelManager):
    """Kernel channels over IPC sockets in a private directory: no TCP ports on the host."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("transport", "ipc")
        super().__init__(**kwargs)
        self.client_factory = ReadyClient
        # Sockets live in the run's temporary kernel directory, removed when the run ends.
        runtime = Path(tempfile.mkdtemp(prefix="ipc-", dir=os.environ.get(_IPC_DIR)))
        self.ip = str(runtime / "kernel")


def start_kernel(cwd: Path, preload: Sequence[str] = PRELOAD, env: Mapping[str, str] | None = None) -> IPCKernelManager:
    """Start a kernel for a notebook in `cwd` without waiting for it: it boots and imports meshbook
    (`preload`) in the background, e.g. while the notebook before runs. nbclient connects to it later;
    the caller shuts it down (`stop_kernel`). `env`, when given, is its whole environment (else this
    process's)."""
    km = IPCKernelManager(kernel_name=KERNEL_NAME)
    exec_lines = [f"--IPKernelApp.exec_lines={line}" for line in preload]
    options: dict[str, Any] = {} if env is None else {"env": dict(env)}
    run_sync(km.start_kernel)(cwd=str(cwd), extra_arguments=exec_lines, **options)
    return km


KILLED_EXIT_SECONDS = 5.0  # how long a SIGKILLed kernel may take to exit before the run goes on


def wait_until_ready(km: IPCKernelManager, timeout: float) -> bool:
    """Whether a kernel started ahead answered within `timeout`; a failure is left to the notebook's own
    wait for its kernel to report, in its words."""
    client = km.client()
    client.start_channels()
    try:
        run_sync(client.wait_for_ready)(timeout=timeout)
        return True
    except RuntimeError:
        return False
    finally:
        client.stop_channels()


def _await_exit(pid: int, timeout: float) -> None:
    """Return once the process `pid` has exited (a zombie until reaped) or after `timeout` seconds."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:  # gone already, or no pidfd (an old kernel): Popen.wait's polling does the rest
        return
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)


def stop_kernel(km: IPCKernelManager) -> None:
    """Shut a kernel down now (it holds no state worth a graceful end); a dead one is only cleaned up.

    The kernel's process group is killed and the kernel reaped here first: jupyter_client's own wait
    for its end polls every 0.1 s, a tenth of a second between every two notebooks of a run, and
    `Popen.wait` with a timeout polls too; its pidfd says at once when it has exited."""
    if km.has_kernel:
        if km.provisioner is not None:
            run_sync(km.provisioner.kill)()
            process = getattr(km.provisioner, "process", None)
            if isinstance(process, subprocess.Popen):
                _await_exit(process.pid, KILLED_EXIT_SECONDS)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=KILLED_EXIT_SECONDS)  # reaps at once: it has exited
        run_sync(km.shutdown_kernel)(now=True)  # cleans up its connection files and sockets too
    else:
        run_sync(km.cleanup_resources)()
