"""The vault pod's pollers: woken by the changes the sandbox makes itself, otherwise polling on their period;
and their Vault client, kept while the server stays the same."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import cast

from meshbook.param_enums import SandboxSpeed
from meshbook.sandbox.addons.bank_vaults import OpenBaoChanges, PollerClient, openbao_changes
from meshbook.sandbox.node.containers import ContainerContext

LONG = 3600.0  # a period no test may wait out: a missed wake-up fails on the guard below instead
GUARD = 30.0


def _ctx(speed: SandboxSpeed = SandboxSpeed.REALISTIC) -> ContainerContext:
    return cast(
        ContainerContext,
        SimpleNamespace(stopping=asyncio.Event(), speed=speed, services=SimpleNamespace(addon_state={})),
    )


def test_without_a_change_the_poller_sleeps_its_whole_period() -> None:
    async def scenario() -> tuple[bool, bool]:
        changes, ctx = OpenBaoChanges(), _ctx(SandboxSpeed.INSTANT)  # 1 s of a program's sleep: 0.01 s
        sleep = asyncio.ensure_future(changes.sleep(ctx, 1.0, changes.generation))
        await asyncio.sleep(0)
        woken_early = sleep.done()
        return woken_early, await asyncio.wait_for(sleep, GUARD)

    assert asyncio.run(scenario()) == (False, True)


def test_a_stopped_container_ends_the_sleep_with_false() -> None:
    async def scenario() -> bool:
        changes, ctx = OpenBaoChanges(), _ctx()
        sleep = asyncio.ensure_future(changes.sleep(ctx, LONG, changes.generation))
        await asyncio.sleep(0)
        ctx.stopping.set()
        return await asyncio.wait_for(sleep, GUARD)

    assert asyncio.run(scenario()) is False


def test_a_change_wakes_the_sleeping_poller() -> None:
    async def scenario() -> tuple[bool, bool]:
        changes, ctx = OpenBaoChanges(), _ctx()
        sleep = asyncio.ensure_future(changes.sleep(ctx, LONG, changes.generation))
        await asyncio.sleep(0)
        asleep = not sleep.done()
        changes.notify()
        return asleep, await asyncio.wait_for(sleep, GUARD)

    assert asyncio.run(scenario()) == (True, True)


def test_a_change_made_while_the_poller_polled_is_not_missed() -> None:
    async def scenario() -> bool:
        changes, ctx = OpenBaoChanges(), _ctx()
        seen = changes.generation  # noted before the poll
        changes.notify()  # during the poll, before the sleep began
        return await asyncio.wait_for(changes.sleep(ctx, LONG, seen), GUARD)

    assert asyncio.run(scenario()) is True


def test_one_signal_per_vault_cr() -> None:
    ctx = _ctx()
    assert openbao_changes(ctx, "vault", "vault") is openbao_changes(ctx, "vault", "vault")
    assert openbao_changes(ctx, "vault", "vault") is not openbao_changes(ctx, "vault", "other")
    assert openbao_changes(ctx, "vault", "vault") is not openbao_changes(ctx, "team", "vault")


def test_the_poller_keeps_its_client_while_the_server_stays() -> None:
    client = PollerClient()
    first = client.get("https://127.0.0.1:8200", "/state/ca.crt")
    assert client.get("https://127.0.0.1:8200", "/state/ca.crt") is first
    restarted = client.get("https://127.0.0.1:8300", "/state/ca.crt")  # a new server listens elsewhere
    assert restarted is not first
    assert client.get("https://127.0.0.1:8300", "/other/ca.crt") is not restarted
