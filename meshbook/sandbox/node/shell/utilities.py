"""The steps a sandbox container produces, and the utilities (`echo`, `sleep`, `env`...) it can run.

Each utility is a generator: it yields what the process writes and how long it sleeps, and returns its
exit status, so the interpreter can run it in a script or on its own without doing real I/O or waiting.
What a process asks of its surroundings (a line of stdin, a file, another program) is yielded too, and
the runner sends the answer back: a container's main process gets None for each (no stdin, no files,
no other programs), while `kubectl exec` answers from the exec session (`node/exec.py`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Literal

Stream = Literal["stdout", "stderr"]


@dataclass(frozen=True)
class Output:
    """One line the container wrote (without its newline); `stream` tells stdout from stderr.

    `partial`: a piece of a longer line that goes on in the next Output (a runtime cuts long lines).
    """

    text: str
    stream: Stream = "stdout"
    partial: bool = False


@dataclass(frozen=True)
class Sleep:
    """The container sleeps; `math.inf` means it never wakes up (the last step it yields)."""

    seconds: float


@dataclass(frozen=True)
class Exit:
    """The container's main process ended with this status (the last step it yields); `reason` is
    set when the node ended it (`OOMKilled`)."""

    code: int
    reason: str = ""


class OutOfMemory(Exception):
    """The script's state outgrew the memory a sandbox container may hold: the kernel would kill it."""


@dataclass(frozen=True)
class Tick:
    """The script did one more command: where its runner may account CPU and let others run."""


Step = Output | Sleep | Exit


@dataclass(frozen=True)
class Write:
    """Raw text a command wrote; the caller cuts it into `Output` lines."""

    text: str
    stream: Stream = "stdout"


@dataclass(frozen=True)
class Read:
    """Read one line of stdin (with its newline); the answer is None at end of input.

    `prompt` is what an interactive shell shows first; the runner shows it only on a terminal.
    """

    prompt: str = ""


@dataclass(frozen=True)
class Open:
    """Read the file at `path`; the answer is its text, or None when the container has no such file."""

    path: str


@dataclass(frozen=True)
class Spawn:
    """Run a program the shell does not provide; the answer is its exit status, or None (not found).

    `stdout`/`stderr` say where its output goes after redirections (None: discarded). In a pipeline,
    `piped_in` is its stdin and what it writes to stdout is appended to `piped_out`.
    """

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    stdout: Stream | None = "stdout"
    stderr: Stream | None = "stderr"
    piped_in: tuple[str, ...] | None = None
    piped_out: list[str] | None = None


Effect = Write | Sleep | Tick | Read | Open | Spawn
Answer = str | int | None
Events = Generator[Effect, Answer, int]
Runner = Callable[[list[str], dict[str, str]], Events]


@dataclass(frozen=True)
class Invocation:
    """What a utility sees: its arguments, its environment, and how to run a command (for `env CMD`)."""

    args: list[str]
    env: dict[str, str]
    run: Runner


_ESCAPES = {"a": "\a", "b": "\b", "e": "\x1b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_ESCAPES.update({"\\": "\\"})
_ECHO_OCTAL = re.compile(r"0([0-7]{0,3})")
_PRINTF_OCTAL = re.compile(r"([0-7]{1,3})")
_DIRECTIVE = re.compile(r"%([-+ #0]*)(\d*)(?:\.(\d*))?([sbcdiuxXoeEfFgG%])")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([smhd]?)")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def unescape(text: str, octal: re.Pattern[str]) -> tuple[str, bool]:
    """Interpret backslash escapes as `echo -e` / `printf` do; True when `\\c` stopped the output."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if c != "\\" or not nxt:
            out.append(c)
            i += 1
        elif nxt == "c":
            return "".join(out), True
        elif match := octal.match(text, i + 1):
            out.append(chr(int(match.group(1) or "0", 8) & 0xFF))
            i = match.end()
        else:
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
    return "".join(out), False


def echo(inv: Invocation) -> Events:
    args = list(inv.args)
    newline, escapes = True, False
    while args and re.fullmatch(r"-[neE]+", args[0]):
        for flag in args.pop(0)[1:]:
            newline = newline and flag != "n"
            escapes = flag == "e" or (escapes and flag != "E")
    text = " ".join(args)
    if escapes:
        text, stopped = unescape(text, _ECHO_OCTAL)
        newline = newline and not stopped
    yield Write(text + ("\n" if newline else ""))
    return 0


def _number(arg: str, conv: str, errors: list[str]) -> int | float:
    text = arg.strip()
    try:
        if text[:1] in ("'", '"'):
            return ord(text[1]) if len(text) > 1 else 0
        return float(text) if conv in "eEfFgG" else int(text, 0) if text.startswith("0x") else int(text)
    except ValueError:
        errors.append(f"printf: {arg}: invalid number")
        return 0


def _format_once(fmt: str, args: list[str], errors: list[str]) -> tuple[str, int, bool]:
    """One pass of `printf FORMAT` over `args`: (text, arguments used, stopped by \\c)."""
    out: list[str] = []
    used = 0
    pos = 0
    for match in _DIRECTIVE.finditer(fmt):
        text, stop = unescape(fmt[pos : match.start()], _PRINTF_OCTAL)
        out.append(text)
        if stop:
            return "".join(out), used, True
        pos = match.end()
        flags, width, precision, conv = match.groups()
        if conv == "%":
            out.append("%")
            continue
        arg = args[used] if used < len(args) else None
        used += arg is not None
        spec = f"%{flags}{width}" + ("" if precision is None else f".{precision or 0}")
        if conv in "sbc":
            value = arg or ""
            if conv == "b":
                value, stop = unescape(value, _ECHO_OCTAL)
            out.append((spec + "s") % (value[:1] if conv == "c" else value))
            if conv == "b" and stop:
                return "".join(out), used, True
        else:
            number = _number(arg, conv, errors) if arg is not None else 0
            out.append((spec + ("d" if conv in "iu" else conv)) % number)
    text, stop = unescape(fmt[pos:], _PRINTF_OCTAL)
    out.append(text)
    return "".join(out), used, stop


def printf(inv: Invocation) -> Events:
    if not inv.args:
        yield Write("printf: usage: printf format [arguments]\n", "stderr")
        return 2
    fmt, rest = inv.args[0], inv.args[1:]
    errors: list[str] = []
    while True:
        text, used, stop = _format_once(fmt, rest, errors)
        yield Write(text)
        rest = rest[used:]
        if stop or not rest or not used:
            break
    for error in errors:
        yield Write(error + "\n", "stderr")
    return 1 if errors else 0


def sleep(inv: Invocation) -> Events:
    if not inv.args:
        yield Write("sleep: missing operand\n", "stderr")
        return 1
    total = 0.0
    for arg in inv.args:
        match = _DURATION.fullmatch(arg)
        if arg.lower() in ("inf", "infinity"):
            total = math.inf
        elif match:
            total += float(match.group(1)) * _UNITS[match.group(2)]
        else:
            yield Write(f"sleep: invalid number '{arg}'\n", "stderr")
            return 1
    yield Sleep(total)
    return 0


def cat(inv: Invocation) -> Events:
    status = 0
    for path in inv.args or ["-"]:
        if path == "-":
            while isinstance(line := (yield Read()), str):
                yield Write(line)
        elif path != "/dev/null":
            text = yield Open(path)
            if isinstance(text, str):
                yield Write(text)
            else:
                yield Write(f"cat: can't open '{path}': No such file or directory\n", "stderr")
                status = 1
    return status


def env(inv: Invocation) -> Events:
    args = list(inv.args)
    environ = dict(inv.env)
    while args and (args[0] in ("-i", "-", "--") or "=" in args[0]):
        arg = args.pop(0)
        if arg in ("-i", "-"):
            environ = {}
        elif arg != "--":
            name, _, value = arg.partition("=")
            environ[name] = value
    if args:
        return (yield from inv.run(args, environ))
    yield Write("".join(f"{name}={value}\n" for name, value in environ.items()))
    return 0


def printenv(inv: Invocation) -> Events:
    if not inv.args:
        return (yield from env(Invocation([], inv.env, inv.run)))
    found = [inv.env[name] for name in inv.args if name in inv.env]
    yield Write("".join(value + "\n" for value in found))
    return 0 if len(found) == len(inv.args) else 1


def true(inv: Invocation) -> Events:
    return 0
    yield  # makes this function a generator


def false(inv: Invocation) -> Events:
    return 1
    yield  # makes this function a generator


_EXISTING = frozenset({"/", "/dev/null", "/tmp", "/dev"})
_DIRECTORIES = frozenset({"/", "/tmp", "/dev"})
_UNARY: dict[str, Callable[[str], bool]] = {
    "-n": lambda s: s != "",
    "-z": lambda s: s == "",
    "-e": lambda s: s in _EXISTING,
    "-r": lambda s: s in _EXISTING,
    "-w": lambda s: s in _EXISTING,
    "-d": lambda s: s in _DIRECTORIES,
    "-f": lambda s: False,
    "-s": lambda s: False,
    "-x": lambda s: False,
    "-L": lambda s: False,
    "-h": lambda s: False,
}
_STRING_OPS: dict[str, Callable[[str, str], bool]] = {
    "=": lambda a, b: a == b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "-a": lambda a, b: a != "" and b != "",
    "-o": lambda a, b: a != "" or b != "",
}
_INTEGER_OPS: dict[str, Callable[[int, int], bool]] = {
    "-eq": lambda a, b: a == b,
    "-ne": lambda a, b: a != b,
    "-lt": lambda a, b: a < b,
    "-le": lambda a, b: a <= b,
    "-gt": lambda a, b: a > b,
    "-ge": lambda a, b: a >= b,
}


def _integer(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{text}: integer expression expected") from None


def _test(args: list[str]) -> bool:
    """POSIX `test` with up to four arguments, plus `-a`/`-o` between longer expressions."""
    n = len(args)
    if n > 4 or (n > 3 and args[0] != "!"):
        for op in ("-o", "-a"):
            if op in args[1:-1]:
                i = len(args) - 1 - args[::-1].index(op)
                left, right = _test(args[:i]), _test(args[i + 1 :])
                return (left or right) if op == "-o" else (left and right)
    if n == 0:
        return False
    if args[0] == "!" and n > 1:
        return not _test(args[1:])
    if n == 1:
        return args[0] != ""
    if n == 2:
        if args[0] not in _UNARY:
            raise ValueError(f"{args[0]}: unary operator expected")
        return _UNARY[args[0]](args[1])
    if n == 3 and args[1] in _STRING_OPS:
        return _STRING_OPS[args[1]](args[0], args[2])
    if n == 3 and args[1] in _INTEGER_OPS:
        return _INTEGER_OPS[args[1]](_integer(args[0]), _integer(args[2]))
    if args[0] == "(" and args[-1] == ")":
        return _test(args[1:-1])
    raise ValueError(f"{args[1]}: binary operator expected" if n == 3 else "syntax error")


def run_test(inv: Invocation, name: str = "test") -> Events:
    args = list(inv.args)
    if name == "[":
        if not args or args[-1] != "]":
            yield Write("[: missing ]\n", "stderr")
            return 2
        args.pop()
    try:
        return 0 if _test(args) else 1
    except ValueError as error:
        yield Write(f"{name}: {error}\n", "stderr")
        return 2


def bracket(inv: Invocation) -> Events:
    return (yield from run_test(inv, "["))


UTILITIES: dict[str, Callable[[Invocation], Events]] = {
    "echo": echo,
    "printf": printf,
    "sleep": sleep,
    "cat": cat,
    "env": env,
    "printenv": printenv,
    "true": true,
    "false": false,
    "test": run_test,
    "[": bracket,
}
