"""What a sandbox container "runs": a tiny interpreter for the commands of a pod spec.

The sandbox has no container runtime, so its kubelet stand-in turns a container's `command`/`args` into
a `Script` and plays its steps: lines of output, sleeps and the exit status. `parse_command` follows
Kubernetes semantics (`command` replaces the image ENTRYPOINT, `args` are appended, `$(VAR)` references
are expanded from the container environment) and knows a few programs: the shells (`sh -c SCRIPT`,
`bash -c`...), the utilities of `utilities.py` (`echo`, `printf`, `sleep`, `env`, `printenv`, `cat`,
`true`, `false`, `test`) and the filters of `filters.py` (`grep`, `head`, `tail`, `wc`, `hostname`).
Any other program, or no command at all, is taken to be a long-running server: its script never ends
(`Script.runs_forever`, one `Sleep(math.inf)` step).

Scripts run by `sh -c` may use quoting, backslash escapes, `$VAR`/`${VAR}`/`${VAR:-default}` (and the
`-`, `+`, `=`, `?` forms), `$?`, `$0`..`$9`, `$#`, `$@`, `&&`, `||`, `;`, newlines, `#` comments,
`NAME=value` assignments, `export`, `unset`, `set -e/-x/-u`, `exit`, `exec`, `read`, `if`/`while`/`until`/
`for`, pipes (stage after stage) and redirections of stdout/stderr (a file target discards the text). A
container's main process has no stdin and no files (`kubectl exec` gives both). Background jobs, subshells,
command substitution, arithmetic, `case` and functions are reported as syntax errors (status 2); an
unknown command prints `sh: CMD: not found` and has status 127, as in a real shell.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import overload

from meshbook.sandbox.node.shell.interpreter import COMMANDS, SHELLS, shell_main
from meshbook.sandbox.node.shell.syntax import ParseError
from meshbook.sandbox.node.shell.utilities import (
    Events,
    Exit,
    Invocation,
    OutOfMemory,
    Output,
    Sleep,
    Step,
    Stream,
    Tick,
    Write,
)

PARTIAL_LINE = 16 * 1024  # characters of an unfinished line held before it is shown as a partial line

__all__ = [
    "Exit", "Output", "ParseError", "Script", "Sleep", "Step", "Tick", "expand_references", "parse_command",
]  # fmt: skip


def expand_references(text: str, env: Mapping[str, str]) -> str:
    """Expand `$(VAR)` as the kubelet does in command and args: `$$` is `$`, unknown names stay as is."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "$" or i + 1 == len(text):
            out.append(text[i])
            i += 1
        elif text[i + 1] == "$":
            out.append("$")
            i += 2
        elif text[i + 1] == "(" and (end := text.find(")", i + 2)) >= 0:
            name = text[i + 2 : end]
            out.append(env.get(name, f"$({name})"))
            i = end + 1
        else:
            out.append(text[i : i + 2])
            i += 2
    return "".join(out)


def _program(argv: tuple[str, ...] | list[str]) -> tuple[str, list[str]]:
    """The program a container runs and its argv (`busybox sh ...` runs `sh ...`)."""
    program = posixpath.basename(argv[0]) if argv else ""
    if program == "busybox" and len(argv) > 1:
        return _program(argv[1:])
    return program, list(argv)


def _main(argv: list[str], env: dict[str, str]) -> Events:
    program, argv = _program(argv)
    if program in SHELLS:
        return (yield from shell_main(argv, env))
    if program in COMMANDS:
        return (yield from COMMANDS[program](Invocation(argv[1:], env, _main)))
    yield Sleep(math.inf)  # an unknown program is a long-running server as far as the sandbox can tell
    return 0


def _lines(events: Events, ticks: bool) -> Iterator[Step | Tick]:
    """Cut writes into lines; a partial line is shown before a sleep or the exit, and in pieces once it
    grows past PARTIAL_LINE (so `while true; do printf x; done` holds no growing line)."""
    pending: dict[Stream, str] = {"stdout": "", "stderr": ""}

    def flush() -> Iterator[Output]:
        for stream, text in pending.items():
            if text:
                pending[stream] = ""
                yield Output(text, stream)

    while True:
        try:
            event = next(events)
        except StopIteration as stop:
            yield from flush()
            yield Exit(stop.value)
            return
        except OutOfMemory:
            yield from flush()
            yield Exit(137, "OOMKilled")  # killed by the kernel: SIGKILL, as a memory cgroup does
            return
        if isinstance(event, Tick):
            if ticks:
                yield event
        elif isinstance(event, Write):
            *complete, pending[event.stream] = (pending[event.stream] + event.text).split("\n")
            yield from (Output(line, event.stream) for line in complete)
            if len(pending[event.stream]) > PARTIAL_LINE:
                yield Output(pending[event.stream], event.stream, partial=True)
                pending[event.stream] = ""
        elif not isinstance(event, Sleep):
            continue  # stdin, files, other programs: a container's main process has none (answer None)
        else:
            yield from flush()
            yield event
            if math.isinf(event.seconds):
                return


@dataclass(frozen=True)
class Script:
    """A container's argv, ready to play; see the module docstring for what it understands."""

    argv: tuple[str, ...]

    @property
    def runs_forever(self) -> bool:
        """True when the program is unknown (a server) or absent: its steps are one endless sleep."""
        program, _ = _program(self.argv)
        return program not in SHELLS and program not in COMMANDS

    @overload
    def steps(self, env: Mapping[str, str]) -> Iterator[Step]: ...

    @overload
    def steps(self, env: Mapping[str, str], *, ticks: bool) -> Iterator[Step | Tick]: ...

    def steps(self, env: Mapping[str, str], *, ticks: bool = False) -> Iterator[Step | Tick]:
        """Output lines, sleeps and finally `Exit`, or an endless `Sleep` that ends the steps.

        Steps are produced lazily (a `while true` loop runs only as far as they are read) and never
        raise: a syntax error is an sh-like error line on stderr and `Exit(2)`. With `ticks`, a `Tick`
        marks each command run, so a runner can account CPU even in a loop that prints nothing.
        """
        environ = dict(env)
        return _lines(_main([expand_references(arg, environ) for arg in self.argv], environ), ticks)


def parse_command(command: list[str], args: list[str]) -> Script:
    """The script for a container's `command` and `args`.

    `command` replaces the image ENTRYPOINT and `args` are appended to it. Without `command`, `args`
    alone are run, as for images without an ENTRYPOINT (busybox, alpine...); with neither, the image
    default is unknown and the container is taken to run a server forever.
    """
    return Script(tuple(command) + tuple(args))
