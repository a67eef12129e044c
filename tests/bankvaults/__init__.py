"""Tests of the Bank-Vaults layer: Vault access and secret delivery.

`scenario_one` brings up the guide's scenario 1 on a fresh sandbox (Istio, Bank-Vaults, the Vault CR
with a real OpenBao behind vault-0, and the app), the same way `tests/sandbox/test_scenarios.py` does.
`assert_no_secret` checks text for secrets while keeping the secrets themselves out of failure output.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from meshbook.sandbox import control
from tests.sandbox.conftest import RunningSandbox, start_sandbox
from tests.sandbox.test_scenarios import install_app, install_vault, prerequisites


@contextmanager
def scenario_one(tmp: Path) -> Iterator[RunningSandbox]:
    state = tmp / "state"
    running = start_sandbox(state)
    try:
        prerequisites(running, state)
        install_vault(running)
        install_app(running)
        yield running
    finally:
        running.api.close()
        control.down(state)


def root_token(sandbox: RunningSandbox, namespace: str = "vault") -> str:
    """The root token as a user with kubectl would read it (only to prove it never shows up anywhere)."""
    encoded = sandbox.kubectl(
        "get", "secret", "vault-unseal-keys", "-n", namespace, "-o", "jsonpath={.data.vault-root}"
    ).stdout
    return base64.b64decode(encoded).decode()


def assert_no_secret(text: str, secrets: Mapping[str, str], where: str) -> None:
    """Fail naming only which secret leaked into `where`; the values never reach the failure report."""
    leaked = sorted(name for name, value in secrets.items() if value and value in text)
    assert not leaked, f"{', '.join(leaked)} leaked into {where}"
