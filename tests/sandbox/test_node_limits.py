"""The node's limits without a server: log files and their rotation, the CPU quota, the kubelet's
configuration, long lines and command ticks of the shell, and the size and address rules."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from meshbook.bankvaults.webhook_releases import RELEASES, UNRELEASED, release_of
from meshbook.sandbox.addons.vault_addr import object_addr_problem
from meshbook.sandbox.apiserver.size_limits import check_data_size
from meshbook.sandbox.config import (
    DEFAULT_CONTAINER_CPU,
    MAX_CONTAINER_CPU,
    ContainerLogPolicy,
    KubeletConfigError,
    container_cpu,
    container_log_policy,
)
from meshbook.sandbox.node.cpu import CpuQuota
from meshbook.sandbox.node.logfiles import PARTIAL_LINE_BYTES, ContainerLog
from meshbook.sandbox.node.shell.script import Exit, Output, Tick, parse_command
from meshbook.sandbox.storage.store import StoreError

# -- the kubelet's configuration -------------------------------------------------------------------------


def test_kubelet_config_refuses_what_the_kubelet_refuses(tmp_path: Path) -> None:
    config = tmp_path / "kubelet-config.yaml"
    config.write_text("kind: KubeletConfiguration\ncontainerLogMaxFiles: 1\n")
    with pytest.raises(KubeletConfigError, match="containerLogMaxFiles: 1 must be an integer greater than 1"):
        container_log_policy(tmp_path)
    config.write_text("kind: KubeletConfiguration\ncontainerLogMaxSize: ten\n")
    with pytest.raises(KubeletConfigError, match="containerLogMaxSize: quantities must match"):
        container_log_policy(tmp_path)
    config.write_text("kind: Pod\n")
    with pytest.raises(KubeletConfigError, match="expected a KubeletConfiguration"):
        container_log_policy(tmp_path)


def test_kubelet_defaults_and_overrides(tmp_path: Path) -> None:
    assert container_log_policy(tmp_path) == ContainerLogPolicy(10 * 1024 * 1024, 5)
    (tmp_path / "kubelet-config.yaml").write_text("kind: KubeletConfiguration\ncontainerLogMaxSize: 2Mi\n")
    assert container_log_policy(tmp_path) == ContainerLogPolicy(2 * 1024 * 1024, 5)


def test_container_cpu_is_its_limit_within_the_loops_share() -> None:
    assert container_cpu({"name": "a"}) == DEFAULT_CONTAINER_CPU
    assert container_cpu({"resources": {"limits": {"cpu": "250m"}}}) == 0.25
    assert container_cpu({"resources": {"limits": {"cpu": "4"}}}) == MAX_CONTAINER_CPU


# -- log files -----------------------------------------------------------------------------------------


def test_log_rotates_at_the_size_and_keeps_max_files(tmp_path: Path) -> None:
    path = tmp_path / "app" / "0.log"
    log = ContainerLog(path, ContainerLogPolicy(max_size=1000, max_files=3))
    for i in range(200):
        log.write(f"line {i}")
    files = sorted(p.name for p in path.parent.iterdir())
    assert len(files) == 3 and "0.log" in files, files
    assert all(p.stat().st_size < 1000 + 60 for p in path.parent.iterdir())
    first, lines = log.snapshot()  # the current file only, as the kubelet reads it
    assert [text for _, text in lines] == [f"line {i}" for i in range(first, 200)]
    assert 0 < first < 200
    log.remove()
    assert list(path.parent.iterdir()) == []


def test_a_follower_continues_across_a_rotation(tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        log = ContainerLog(tmp_path / "0.log", ContainerLogPolicy(max_size=400, max_files=2))
        log.write("a")
        first, lines = log.snapshot()
        seen = first + len(lines)
        for i in range(12):  # enough to rotate once (about 45 bytes a record)
            log.write(f"b{i}")
        assert log.generation == 1
        new = await log.wait_new(seen)
        log.close()
        assert new is not None
        after = await log.wait_new(seen + len(new))
        assert after is None  # the run ended and nothing is left
        return [text for _, text in [*lines, *new]]

    assert asyncio.run(scenario()) == ["a", *[f"b{i}" for i in range(12)]]


def test_long_and_multi_line_writes(tmp_path: Path) -> None:
    log = ContainerLog(tmp_path / "0.log")
    long = "y" * (PARTIAL_LINE_BYTES * 2 + 5)
    log.write(long)
    log.write("one\ntwo")
    log.write("par", partial=True)
    log.write("tial")
    log.close()
    tags = [line.split(" ")[2] for line in (tmp_path / "0.log").read_text().splitlines()]
    assert tags == ["P", "P", "F", "F", "F", "P", "F"]
    _, lines = log.snapshot()
    assert [text for _, text in lines] == [long, "one", "two", "partial"]


def test_writes_after_removal_are_dropped(tmp_path: Path) -> None:
    log = ContainerLog(tmp_path / "0.log")
    log.remove()
    log.write("late")
    assert not (tmp_path / "0.log").exists()


# -- the CPU quota ---------------------------------------------------------------------------------------


class FakeClocks:
    def __init__(self) -> None:
        self.cpu = 0.0
        self.wall = 0.0
        self.slept: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.wall += seconds


def test_quota_throttles_a_container_over_its_share(monkeypatch: pytest.MonkeyPatch) -> None:
    clocks = FakeClocks()
    monkeypatch.setattr("meshbook.sandbox.node.cpu.asyncio.sleep", clocks.sleep)
    quota = CpuQuota(0.1, period=0.1, cpu_slice=0.002, cpu_clock=lambda: clocks.cpu, wall_clock=lambda: clocks.wall)

    async def run(steps: int) -> None:
        for _ in range(steps):
            clocks.cpu += 0.001  # each step burns 1 ms
            clocks.wall += 0.001
            await quota.tick()

    asyncio.run(run(1))
    assert clocks.slept == []  # under a slice: no yield at all
    asyncio.run(run(7))
    assert clocks.slept == [0, 0, 0, 0]  # yields every 2 ms slice, not yet at its 10 ms
    asyncio.run(run(2))
    assert clocks.slept[4:] == [pytest.approx(0.09)]  # at its quota after 10 ms: sleeps out the period
    assert quota.throttled == 1


def test_quota_does_not_charge_time_spent_sleeping() -> None:
    clocks = FakeClocks()
    quota = CpuQuota(0.1, cpu_clock=lambda: clocks.cpu, wall_clock=lambda: clocks.wall)
    clocks.cpu += 5.0  # CPU the loop used for others while this container slept
    quota.resume()
    asyncio.run(quota.tick())
    assert quota.throttled == 0


# -- the shell's ticks and long lines ----------------------------------------------------------------------


def test_a_busy_loop_ticks_per_command_and_a_quiet_one_still_ends_in_sleep() -> None:
    steps = list(
        itertools.islice(parse_command(["sh", "-c", "while true; do echo x; done"], []).steps({}, ticks=True), 6)
    )
    assert steps == [Tick(), Tick(), Output("x"), Tick(), Tick(), Output("x")]
    quiet = list(parse_command(["sh", "-c", "while :; do :; done"], []).steps({}))
    assert [type(s).__name__ for s in quiet] == ["Sleep"]


def test_an_endless_line_is_shown_in_partial_pieces() -> None:
    steps = parse_command(["sh", "-c", "while true; do printf xxxxxxxx; done"], []).steps({})
    first = next(steps)
    assert isinstance(first, Output) and first.partial and len(first.text) > 16 * 1024


@pytest.mark.parametrize(
    "script",
    [
        'A=x; while true; do A="$A$A"; done',  # one value doubling
        'set -- x; while true; do set -- "$@" "$@"; done',  # positional parameters doubling
        'A=x; while true; do A="$A $A"; set -- $A; done',  # ever more parameters, each small
    ],
)
def test_a_script_outgrowing_its_memory_is_oom_killed(script: str) -> None:
    steps = list(parse_command(["sh", "-c", "echo start; " + script], []).steps({}))
    assert steps == [Output("start"), Exit(137, "OOMKilled")]


# -- size and address rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "wording"), [(31, "must have at most 1048576 bytes"), (32, "may not be more than 1048576 bytes")]
)
def test_secret_data_over_1_mib_per_version(minor: int, wording: str) -> None:
    import base64

    secret = {"metadata": {"name": "big"}, "data": {"k": base64.b64encode(b"a" * (1024 * 1024 + 1)).decode()}}
    with pytest.raises(StoreError) as info:
        check_data_size("Secret", secret, minor)
    assert info.value.code == 422
    assert info.value.message == f'Secret "big" is invalid: data: Too long: {wording}'
    check_data_size("Secret", {"metadata": {"name": "ok"}, "data": {"k": "YQ=="}}, minor)


def test_webhook_release_from_its_image() -> None:
    v1231 = RELEASES[0][1]
    assert not v1231.checks_pod_vault_addr
    assert release_of("ghcr.io/bank-vaults/vault-secrets-webhook:v1.23.1") == v1231
    assert release_of("ghcr.io/bank-vaults/vault-secrets-webhook:1.22.2") == v1231
    assert release_of("ghcr.io/bank-vaults/vault-secrets-webhook:main") == UNRELEASED
    assert release_of("localhost:5000/vault-secrets-webhook") == UNRELEASED  # no tag: latest
    assert release_of("ghcr.io/bank-vaults/vault-secrets-webhook@sha256:abc") == UNRELEASED
    assert release_of("") == RELEASES[0][1]  # no webhook Deployment found: the newest release


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("", "address is empty"),
        (
            "ftp://vault:8200",
            'address "ftp://vault:8200" has unsupported scheme "ftp" (only http and https are allowed)',
        ),
        ("https://u:p@vault:8200", 'address "https://u:p@vault:8200" must not contain user credentials'),
        ("https://vault:8200?x=1", 'address "https://vault:8200?x=1" must not contain a query string or fragment'),
        ("https://other:8200", 'address "https://other:8200" is not in the configured allowlist'),
        ("http://localhost:8200", 'address "http://localhost:8200" targets a metadata host, which is never allowed'),
        (
            "https://10.0.0.5:8200",
            'address "https://10.0.0.5:8200": targets a loopback, link-local, private, or shared-address-space '
            'host "10.0.0.5"',
        ),
        ("HTTPS://Vault:8200/", None),
    ],
)
def test_object_vault_addr_rules(address: str, problem: str | None) -> None:
    allowlist = ["https://vault:8200", "https://u:p@vault:8200", "https://vault:8200?x=1"]
    allowlist += ["http://localhost:8200", "https://10.0.0.5:8200"]
    assert object_addr_problem(address, allowlist, allow_private=False) == problem
    if address == "https://10.0.0.5:8200":
        assert object_addr_problem(address, allowlist, allow_private=True) is None
