"""The wait for a kernel ends on the kernel's own `idle` after kernel_info, not after 0.2 s of silence;
a kernel that died or never answers still ends the wait with jupyter_client's errors."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from jupyter_core.utils import run_sync

from meshbook.runbook.kernels import ReadyClient, kernelspec, start_kernel, stop_kernel

BOUND = 120.0  # seconds for a kernel to boot with meshbook imported: generous on a busy machine


def test_a_dead_kernel_ends_the_wait_with_the_error_the_run_reports(tmp_path: Path) -> None:
    with kernelspec():
        km = start_kernel(tmp_path)
        try:
            os.kill(km.provisioner.process.pid, signal.SIGKILL)  # type: ignore[union-attr]
            kc = km.client()
            kc.start_channels()
            try:
                with pytest.raises(RuntimeError, match="Kernel died before replying to kernel_info"):
                    run_sync(kc.wait_for_ready)(timeout=BOUND)
            finally:
                kc.stop_channels()
        finally:
            stop_kernel(km)


def test_a_kernel_that_never_answers_ends_the_wait_at_its_timeout(tmp_path: Path) -> None:
    with kernelspec():
        km = start_kernel(tmp_path)
        try:
            os.kill(km.provisioner.process.pid, signal.SIGSTOP)  # type: ignore[union-attr]
            kc = km.client()
            kc.start_channels()
            try:
                with pytest.raises(RuntimeError, match="didn't respond in 2 seconds"):
                    run_sync(kc.wait_for_ready)(timeout=2)
            finally:
                kc.stop_channels()
        finally:
            stop_kernel(km)


def test_the_wait_ends_on_the_idle_status_of_its_own_kernel_info_request(tmp_path: Path) -> None:
    with kernelspec():
        km = start_kernel(tmp_path)
        try:
            kc = km.client()
            assert isinstance(kc, ReadyClient)
            sent: list[str] = []
            seen: list[dict[str, Any]] = []
            kernel_info, get_msg = kc.kernel_info, kc.iopub_channel.get_msg

            def recording_kernel_info() -> str:
                sent.append(kernel_info())
                return sent[-1]

            async def recording_get_msg(timeout: float | None = None) -> dict[str, Any]:
                try:
                    message: dict[str, Any] = await get_msg(timeout=timeout)
                except Empty:
                    seen.append({"msg_type": "silence"})
                    raise
                seen.append(message)
                return message

            kc.kernel_info = recording_kernel_info  # type: ignore[method-assign]
            kc.start_channels()
            kc.iopub_channel.get_msg = recording_get_msg  # type: ignore[method-assign]
            try:
                run_sync(kc.wait_for_ready)(timeout=BOUND)
                last = seen[-1]
                assert last["msg_type"] != "silence", "the wait ended on a silence, not on the kernel's idle"
                assert (last["msg_type"], last["content"]["execution_state"]) == ("status", "idle")
                assert last["parent_header"]["msg_id"] == sent[-1]
            finally:
                kc.stop_channels()
        finally:
            stop_kernel(km)
