"""`pods/exec` and `pods/attach` inside a sandbox container, whatever transport carries them.

A transport (the WebSocket channel protocols in `remotecommand.py`, or SPDY streams) feeds stdin and
terminal sizes into a session, passes it a `send(stream, bytes)` for output, and writes the session's
`ExecResult` on the error channel. An exec runs its command as runc would start it in the container:
the shells and utilities of `shell/`, or a program an add-on provides for that container (the OpenBao
CLI in a Vault pod's `vault` container); anything else fails to start with runc's
`executable file not found in $PATH`, which the kubelet reports as an internal error.
The process sees the container's environment and its files (`filesystem.py`).
"""

from __future__ import annotations

import asyncio
import math
import posixpath
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from meshbook.sandbox.config import container_cpu
from meshbook.sandbox.node.containers import ContainerContext
from meshbook.sandbox.node.cpu import CpuQuota
from meshbook.sandbox.node.filesystem import container_files
from meshbook.sandbox.node.shell.interpreter import COMMANDS, SHELLS, shell_main
from meshbook.sandbox.node.shell.utilities import (
    Answer,
    Events,
    Invocation,
    Open,
    OutOfMemory,
    Read,
    Sleep,
    Spawn,
    Tick,
    Write,
)
from meshbook.sandbox.node.terminal import LineInput, to_terminal

Stream = Literal["stdout", "stderr"]
Send = Callable[[Stream, bytes], Awaitable[None]]


@dataclass(frozen=True)
class ExecOptions:
    """The `PodExecOptions` a request carries (attach has no command)."""

    command: tuple[str, ...] = ()
    stdin: bool = False
    stdout: bool = True
    stderr: bool = True
    tty: bool = False


@dataclass(frozen=True)
class ExecResult:
    """How the process ended: its exit code, or the runtime's reason it never started."""

    exit_code: int = 0
    start_error: str = ""


class ProcessIO(Protocol):
    """What a provided program gets for stdio: stdin bytes (None at its end) and an output writer."""

    async def read(self) -> bytes | None: ...

    async def write(self, stream: Stream, data: bytes) -> None: ...


class ExecProgram(Protocol):
    """A program a container has besides the shell and its utilities; returns its exit status."""

    async def run(self, argv: Sequence[str], env: Mapping[str, str], io: ProcessIO) -> int: ...


ExecProgramResolver = Callable[[ContainerContext, str], "ExecProgram | None"]
"""(the running container, a program's base name) -> the program, if that container has it."""


def runtime_start_error(argv0: str) -> str:
    """containerd + runc's text when the command cannot be started (the kubelet prefixes its own)."""
    cause = (
        f'exec: "{argv0}": stat {argv0}: no such file or directory'
        if "/" in argv0
        else f'exec: "{argv0}": executable file not found in $PATH'
    )
    return (
        f'failed to exec in container: failed to start exec "{secrets.token_hex(32)}": '
        f"OCI runtime exec failed: exec failed: unable to start container process: {cause}: unknown"
    )


class _SpawnIO:
    """`ProcessIO` for a provided program: stdin and outputs as the shell's redirections and pipes say."""

    def __init__(self, session: ExecSession, event: Spawn) -> None:
        self.session, self.event = session, event
        self.routes: dict[Stream, Stream | None] = {"stdout": event.stdout, "stderr": event.stderr}
        self.piped = list(event.piped_in) if event.piped_in is not None else None

    async def read(self) -> bytes | None:
        if self.piped is not None:
            line = self.piped.pop(0) if self.piped else None
        else:
            line = await self.session.input.readline() if self.session.options.stdin else None
        return None if line is None else line.encode("utf-8", errors="surrogateescape")

    async def write(self, stream: Stream, data: bytes) -> None:
        target = self.routes[stream]
        if target == "stdout" and self.event.piped_out is not None:
            self.event.piped_out.append(data.decode("utf-8", errors="surrogateescape"))
        elif target is not None:
            await self.session.output(target, data)


class ExecSession:
    """One exec: feed it stdin and resizes, `await run()` for the result; output goes to `send`."""

    def __init__(
        self,
        ctx: ContainerContext,
        options: ExecOptions,
        send: Send,
        programs: Sequence[ExecProgramResolver] = (),
        files: Mapping[str, str] | None = None,
    ) -> None:
        self.ctx = ctx
        self.options = options
        self.send = send
        self.programs = programs
        self.files = dict(files) if files is not None else container_files(ctx)
        self.input = LineInput(options.tty)
        self.size: tuple[int, int] | None = None  # (width, height) of the client's terminal

    # -- what the transport calls -----------------------------------------------------------------

    async def feed_stdin(self, data: bytes) -> None:
        echo = self.input.feed(data)
        if echo:
            await self.send("stdout", echo)

    def close_stdin(self) -> None:
        self.input.close()

    def resize(self, width: int, height: int) -> None:
        self.size = (width, height)

    async def run(self) -> ExecResult:
        argv = list(self.options.command)
        if not self.options.stdin:
            self.input.close()
        events = self._start(argv)
        if events is None:
            return ExecResult(start_error=runtime_start_error(argv[0] if argv else ""))
        return ExecResult(await self._drive(events))

    # -- the process --------------------------------------------------------------------------------

    async def output(self, stream: Stream, data: bytes) -> None:
        """Write process output; with a tty stderr shares stdout and newlines become CR LF."""
        if self.options.tty:
            stream, data = "stdout", to_terminal(data)
        if (self.options.stdout if stream == "stdout" else self.options.stderr) and data:
            await self.send(stream, data)

    def _program(self, name: str) -> ExecProgram | None:
        for resolve in self.programs:
            program = resolve(self.ctx, name)
            if program is not None:
                return program
        return None

    def _start(self, argv: list[str]) -> Events | None:
        """What runc would start for `argv`, or None when the container has no such program."""
        if not argv:
            return None
        name = posixpath.basename(argv[0])
        if name == "busybox" and len(argv) > 1:
            return self._start(argv[1:])
        env = dict(self.ctx.env)
        if name in SHELLS:
            return shell_main(argv, env)
        if name in COMMANDS:
            return COMMANDS[name](Invocation(argv[1:], env, self._run_from_utility))
        if self._program(name) is not None:
            return _spawned(argv, env)
        return None

    def _run_from_utility(self, argv: list[str], env: dict[str, str]) -> Events:
        """`env CMD ...`: run CMD like the shell runs a command (a missing one is `not found`)."""
        name = posixpath.basename(argv[0]) if argv else ""
        if name in SHELLS:
            return shell_main(argv, env)
        if name in COMMANDS:
            return COMMANDS[name](Invocation(argv[1:], env, self._run_from_utility))
        missing = argv[0] if argv else ""
        return _spawned(argv, env, not_found=f"env: can't execute '{missing}': No such file or directory")

    async def _drive(self, events: Events) -> int:
        """Play the process's effects: writes, sleeps, stdin reads, file reads and other programs.

        It runs within the container's CPU quota (`node/cpu.py`), as the container's own process does,
        so an exec'd busy loop cannot hold the server's event loop either."""
        quota = CpuQuota(container_cpu(self.ctx.container))
        answer: Answer = None
        while True:
            try:
                event = events.send(answer)
            except StopIteration as stop:
                status: int = stop.value
                return status
            except OutOfMemory:
                return 137  # killed by the kernel (SIGKILL), as a memory cgroup does
            answer = None
            if isinstance(event, Tick):
                await quota.tick()
                continue
            if isinstance(event, Write):
                await self.output(event.stream, event.text.encode("utf-8", errors="surrogateescape"))
            elif isinstance(event, Sleep):
                await (asyncio.Event().wait() if math.isinf(event.seconds) else asyncio.sleep(event.seconds))
            elif isinstance(event, Read):
                if self.input.tty and event.prompt:
                    await self.output("stdout", event.prompt.encode())
                answer = await self.input.readline()
            elif isinstance(event, Open):
                answer = self.files.get(posixpath.normpath(event.path))
            else:
                answer = await self._spawn(event)
            quota.resume()  # time spent waiting on output, sleeps, input or programs is not its CPU

    async def _spawn(self, event: Spawn) -> int | None:
        program = self._program(posixpath.basename(event.argv[0]))
        if program is None:
            return None
        return await program.run(event.argv, event.env, _SpawnIO(self, event))


def _spawned(argv: list[str], env: dict[str, str], not_found: str = "") -> Events:
    """A provided program as a process of its own; `not_found` is printed when there is none."""
    status = yield Spawn(tuple(argv), env)
    if isinstance(status, int):
        return status
    if not_found:
        yield Write(not_found + "\n", "stderr")
    return 127


class AttachSession:
    """`pods/attach`: the container's output from now on, until it ends or the client leaves.

    Sandbox programs do not read stdin, so stdin a client sends is taken and dropped.
    """

    def __init__(self, ctx: ContainerContext, options: ExecOptions, send: Send) -> None:
        self.ctx, self.options, self.send = ctx, options, send

    async def feed_stdin(self, data: bytes) -> None:
        return None

    def close_stdin(self) -> None:
        return None

    def resize(self, width: int, height: int) -> None:
        return None

    async def run(self) -> ExecResult:
        log = self.ctx.log
        seen = len(log.snapshot())
        while (lines := await log.wait_new(seen)) is not None:
            seen += len(lines)
            data = "".join(text + "\n" for _, text in lines).encode("utf-8", errors="surrogateescape")
            if self.options.tty:
                data = to_terminal(data)
            if self.options.stdout:
                await self.send("stdout", data)
        return ExecResult()


Session = ExecSession | AttachSession


def exec_status(command: Sequence[str], result: ExecResult) -> dict[str, Any]:
    """The `metav1.Status` the kubelet writes on the error channel, in Go's field order."""
    if result.start_error:
        cause = f"error executing command in container: {result.start_error}"
        return {
            "metadata": {},
            "status": "Failure",
            "message": f"Internal error occurred: {cause}",
            "reason": "InternalError",
            "details": {"causes": [{"message": cause}]},
            "code": 500,
        }
    if result.exit_code == 0:
        return {"metadata": {}, "status": "Success"}
    argv = " ".join(command)
    return {
        "metadata": {},
        "status": "Failure",
        "message": (
            "command terminated with non-zero exit code: "
            f"error executing command [{argv}], exit code {result.exit_code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(result.exit_code)}]},
    }
