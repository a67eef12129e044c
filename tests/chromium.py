"""Headless Chromium for the browser tests (report, JupyterLab panel): one way to get and start it.

Debian's `chromium` is installed with apt-get when /usr/bin/chromium is missing; a test skips, with the
reason, only if that fails. The flags keep it off the network it cannot reach here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def _install_chromium() -> str | None:
    """Install Debian's chromium; None on success, else why not."""
    if shutil.which("apt-get") is None:
        return "apt-get is not available to install chromium"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600"]  # wait for another apt-get rather than fail
    install = [*apt, "install", "-y", "--no-install-recommends", "chromium"]
    attempts = [install, [*apt, "update"], install]  # stale package lists: update, then retry
    output = ""
    for command in attempts:
        try:
            proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1200, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(command)}: {exc}"
        output = (proc.stdout + proc.stderr)[-400:]
        if "install" in command and proc.returncode == 0 and CHROMIUM.exists():
            return None
    return f"apt-get install -y chromium failed: {output.strip()}"


def require_chromium() -> Path:
    """/usr/bin/chromium, installed if missing; skips the calling test (with the reason) if that fails."""
    if not CHROMIUM.exists():
        problem = _install_chromium()
        if problem is not None:
            pytest.skip(f"headless Chromium is needed and could not be installed: {problem}")
    return CHROMIUM


def run_chromium(chromium: Path, profile: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Chromium with the test flags and a fresh profile directory."""
    command = [str(chromium), *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
