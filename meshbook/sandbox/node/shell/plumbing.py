"""How effects flow between a shell's commands: redirections, pipes, and watching a loop's output.

Each helper drives a generator of effects (`utilities.Effect`) and passes the runner's answers back
to it, so a `Read` deep inside a pipeline or a loop still gets its line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator

from meshbook.sandbox.node.shell.syntax import Redirect
from meshbook.sandbox.node.shell.utilities import Answer, Effect, Events, Read, Spawn, Stream, Tick, Write

Flow = Generator[Effect, Answer, None]


def route(events: Events, dest: dict[int, Stream | None]) -> Events:
    """Send each write to the stream its redirections chose (None drops it)."""
    answer: Answer = None
    while True:
        try:
            event = events.send(answer)
        except StopIteration as stop:
            status: int = stop.value
            return status
        if isinstance(event, Write):
            if (target := dest[1 if event.stream == "stdout" else 2]) is not None:
                answer = yield Write(event.text, target)
        elif isinstance(event, Spawn):
            outs = {"stdout": event.stdout, "stderr": event.stderr}
            routed = {name: dest[1 if out == "stdout" else 2] if out else None for name, out in outs.items()}
            answer = yield dataclasses.replace(event, stdout=routed["stdout"], stderr=routed["stderr"])
        else:
            answer = yield event


def through_pipe(flow: Flow, stdin: list[str] | None, stdout: list[str] | None) -> Flow:
    """Run `flow` reading `stdin` lines (None: the shell's own) and writing stdout into `stdout`."""
    lines = iter(stdin or [])
    answer: Answer = None
    while True:
        try:
            event = flow.send(answer)
        except StopIteration:
            return
        answer = None
        if isinstance(event, Read) and stdin is not None:
            answer = next(lines, None)
        elif isinstance(event, Write) and event.stream == "stdout" and stdout is not None:
            stdout.append(event.text)
        elif isinstance(event, Spawn):
            rest = tuple(lines) if stdin is not None else event.piped_in
            answer = yield dataclasses.replace(event, piped_in=rest, piped_out=stdout)
        else:
            answer = yield event


def forward(flow: Flow, seen: list[bool]) -> Flow:
    """`yield from flow` that also notes in `seen[0]` whether it yielded anything but CPU ticks."""
    answer: Answer = None
    while True:
        try:
            event = flow.send(answer)
        except StopIteration:
            return
        if not isinstance(event, Tick):
            seen[0] = True
        answer = yield event


def destinations(targets: list[tuple[Redirect, str]]) -> dict[int, Stream | None]:
    """Where stdout (1) and stderr (2) go; a file target drops the text (no file system here)."""
    dest: dict[int, Stream | None] = {1: "stdout", 2: "stderr"}
    for redirect, target in targets:
        if redirect.op.startswith("<"):
            continue
        if redirect.op == ">&" and target in ("1", "2"):
            dest[redirect.fd] = dest[int(target)]
        else:
            dest[redirect.fd] = None
    return dest
