"""The `sh -c` interpreter of the sandbox: runs a parsed script, one generator step at a time.

It keeps what a real shell keeps (variables, exported names, positional parameters, `$?`, `set` flags)
so `&&`, `||`, `set -e`, `exit` and loops behave as in sh, while every effect is a yielded event.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Mapping

from meshbook.sandbox.node.shell.filters import FILTERS
from meshbook.sandbox.node.shell.plumbing import Flow, destinations, forward, route, through_pipe
from meshbook.sandbox.node.shell.syntax import (
    AndOr,
    Command,
    For,
    If,
    Lit,
    Loop,
    Param,
    ParseError,
    Pipeline,
    Program,
    Simple,
    Word,
    parse_script,
)
from meshbook.sandbox.node.shell.utilities import (
    UTILITIES,
    Events,
    Invocation,
    OutOfMemory,
    Read,
    Sleep,
    Spawn,
    Tick,
    Write,
)

SHELLS = frozenset({"sh", "bash", "ash", "dash", "ksh", "zsh"})
COMMANDS = UTILITIES | FILTERS
"""Every program besides the shells that a sandbox container has."""
_FLAG_NAMES = {"errexit": "e", "xtrace": "x", "nounset": "u"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INCOMPLETE = ("unexpected end of file", "unterminated quoted string")  # read another line (PS2)

# What a script may hold in variables and positional parameters. A real container grows until its
# memory limit and is OOMKilled; here the state lives in the server, so the sandbox draws the line.
MAX_STATE_BYTES = 16 * 1024 * 1024
MAX_STATE_ENTRIES = 4096  # variables and positional parameters, whatever their size
_STATE_CHECK_EVERY = 256  # commands between full measurements (single values are checked at once)


class _ExitRequest(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _ExpansionError(Exception):
    """`${X:?}` or `set -u` failed; a non-interactive shell prints it and exits with status 2."""


class Interpreter:
    """The state of one `sh -c` run: variables, positional parameters, `$?` and `set` flags."""

    def __init__(self, name: str, positional: list[str], env: Mapping[str, str], flags: str) -> None:
        self.name = name
        self.positional = positional
        self.vars = dict(env)
        self.exported = set(env)
        self.flags = {flag for flag in flags if flag in "exu"}
        self.status = 0
        self.conditions = 0  # inside if/while conditions, where `set -e` does not apply
        self.exited = False  # `exit` (or `set -e`) ended the shell
        self.commands = 0

    def check_memory(self, new_bytes: int = 0) -> None:
        """Raise OutOfMemory when new text (a command's words, a value), or every so often the whole
        state, is over the limit."""
        if new_bytes > MAX_STATE_BYTES or len(self.positional) + len(self.vars) > MAX_STATE_ENTRIES:
            raise OutOfMemory
        if self.commands % _STATE_CHECK_EVERY == 0:
            held = sum(len(k) + len(v) for k, v in self.vars.items()) + sum(len(p) for p in self.positional)
            if held > MAX_STATE_BYTES:
                raise OutOfMemory

    def run_script(self, text: str) -> Events:
        try:
            program = parse_script(text)
        except ParseError as error:
            yield Write(f"{self.name}: {error}\n", "stderr")
            self.status = 2
            return 2
        try:
            yield from self.program(program)
        except _ExitRequest as request:
            self.exited = True
            self.status = request.status
            return request.status
        return self.status

    def program(self, program: Program) -> Flow:
        for item in program:
            yield from self.and_or(item)

    def and_or(self, item: AndOr) -> Flow:
        yield from self.command(item.first)
        last_run = 0
        for i, (op, command) in enumerate(item.rest, start=1):
            if (op == "&&") == (self.status == 0):
                yield from self.command(command)
                last_run = i
        if self.status and "e" in self.flags and not self.conditions and last_run == len(item.rest):
            raise _ExitRequest(self.status)

    def condition(self, program: Program) -> Flow:
        self.conditions += 1
        try:
            yield from self.program(program)
        finally:
            self.conditions -= 1

    def command(self, command: Command) -> Flow:
        if isinstance(command, Simple):
            yield from self.simple(command)
        elif isinstance(command, If):
            for cond, body in command.branches:
                yield from self.condition(cond)
                if self.status == 0:
                    yield from self.program(body)
                    return
            self.status = 0
            yield from self.program(command.orelse)
        elif isinstance(command, Loop):
            yield from self.loop(command)
        elif isinstance(command, Pipeline):
            yield from self.pipeline(command)
        else:
            yield from self.for_loop(command)

    def snapshot(self) -> tuple[object, ...]:
        return (
            tuple(sorted(self.vars.items())),
            frozenset(self.exported),
            tuple(self.positional),
            self.status,
        )

    def loop(self, loop: Loop) -> Flow:
        status = 0
        while True:
            before, seen = self.snapshot(), [False]
            yield from forward(self.condition(loop.cond), seen)
            if (self.status == 0) == loop.until:
                break
            yield from forward(self.program(loop.body), seen)
            status = self.status
            if not seen[0] and self.snapshot() == before:
                yield Sleep(math.inf)  # the same state again and nothing to show: it spins forever
        self.status = status

    def pipeline(self, pipe: Pipeline) -> Flow:
        """One stage after the other, each reading what the one before wrote; `$?` is the last one's.

        Each stage runs in a subshell as in sh: its `exit` ends only that stage. A stage's own
        programs that the node provides (`Spawn`) get the pipe's ends with the event.
        """
        piped: list[str] | None = None  # None: the first stage reads the shell's stdin
        for i, command in enumerate(pipe.commands):
            captured: list[str] | None = [] if i < len(pipe.commands) - 1 else None
            try:
                yield from through_pipe(self.command(command), piped, captured)
            except _ExitRequest as request:
                self.status = request.status
            piped = "".join(captured).splitlines(keepends=True) if captured is not None else None

    def for_loop(self, loop: For) -> Flow:
        items = self.positional if loop.items is None else [f for w in loop.items for f in self.fields(w)]
        self.status = 0
        for item in items:
            self.vars[loop.name] = item
            yield from self.program(loop.body)

    def simple(self, command: Simple) -> Flow:
        yield Tick()  # one command: the runner's unit of CPU accounting
        self.commands += 1
        self.check_memory()
        try:
            words = [field for word in command.words for field in self.fields(word)]
            self.check_memory(sum(len(word) for word in words))  # what `set --` or `export` would keep
            assigns: list[tuple[str, str]] = []
            for name, value in command.assigns:  # in order: `A=1 B=$A` sees the new A
                assigns.append((name, self.string(value)))
                self.check_memory(len(assigns[-1][1]))
                if not words:
                    self.vars[name] = assigns[-1][1]
            targets = [(redirect, self.string(redirect.target)) for redirect in command.redirects]
        except _ExpansionError as error:
            yield Write(f"{self.name}: {error}\n", "stderr")
            raise _ExitRequest(2) from None
        if not words:
            self.status = 0
            return
        if "x" in self.flags:
            yield Write("+ " + " ".join(words) + "\n", "stderr")
        environ = {name: value for name, value in self.vars.items() if name in self.exported}
        environ.update(assigns)
        self.status = yield from route(self.dispatch(words, environ), destinations(targets))

    def dispatch(self, words: list[str], environ: dict[str, str]) -> Events:
        name, args = words[0], words[1:]
        if name == "exec" and args:  # the command replaces the shell: its status is the script's
            raise _ExitRequest((yield from self.external(args, environ)))
        if name == "exec":
            return 0
        builtin = getattr(self, "builtin_" + name, None) if _NAME.fullmatch(name) else None
        if builtin is not None:
            result: int = yield from builtin(args)
            return result
        return (yield from self.external(words, environ))

    def external(self, argv: list[str], environ: dict[str, str]) -> Events:
        program = posixpath.basename(argv[0]) if "/" in argv[0] else argv[0]
        if program in SHELLS:
            return (yield from shell_main(argv, environ))
        if program in COMMANDS:
            return (yield from COMMANDS[program](Invocation(argv[1:], environ, self.external)))
        if program == ":":
            return 0
        status = yield Spawn(tuple(argv), environ)
        if isinstance(status, int):
            return status
        yield Write(f"{self.name}: {argv[0]}: not found\n", "stderr")
        return 127

    def builtin_exit(self, args: list[str]) -> Events:
        if args and not args[0].isdigit():
            yield Write(f"{self.name}: exit: Illegal number: {args[0]}\n", "stderr")
            raise _ExitRequest(2)
        raise _ExitRequest(int(args[0]) & 0xFF if args else self.status)

    def builtin_set(self, args: list[str]) -> Events:
        rest = list(args)
        while rest and rest[0][:1] in ("-", "+") and rest[0] != "--":
            option = rest.pop(0)
            letters = _FLAG_NAMES.get(rest.pop(0), "") if option[1:] == "o" and rest else option[1:]
            for letter in letters:
                if option[0] == "-":
                    self.flags.add(letter)
                else:
                    self.flags.discard(letter)
        if rest:
            self.positional = rest[1:] if rest[0] == "--" else rest
        return 0
        yield  # makes this method a generator

    def builtin_export(self, args: list[str]) -> Events:
        for arg in args:
            name, eq, value = arg.partition("=")
            if eq:
                self.vars[name] = value
            self.exported.add(name)
        return 0
        yield  # makes this method a generator

    def builtin_unset(self, args: list[str]) -> Events:
        for name in args:
            self.vars.pop(name, None)
            self.exported.discard(name)
        return 0
        yield  # makes this method a generator

    def builtin_shift(self, args: list[str]) -> Events:
        count = int(args[0]) if args and args[0].isdigit() else 1
        if count > len(self.positional):
            yield Write(f"{self.name}: shift: can't shift that many\n", "stderr")
            return 1
        self.positional = self.positional[count:]
        return 0

    def builtin_read(self, args: list[str]) -> Events:
        """`read [-r] NAME...`: one line of stdin split into the names, the last one taking the rest."""
        names = [arg for arg in args if not arg.startswith("-")] or ["REPLY"]
        line = yield Read()
        if not isinstance(line, str):
            return 1
        fields = line.rstrip("\n").split(None, len(names) - 1) if names != ["REPLY"] else [line.rstrip("\n")]
        for i, name in enumerate(names):
            self.vars[name] = fields[i] if i < len(fields) else ""
        return 0

    def builtin_pwd(self, args: list[str]) -> Events:
        yield Write("/\n")
        return 0

    def builtin_cd(self, args: list[str]) -> Events:
        return 0  # the sandbox has no file system: every directory change succeeds
        yield  # makes this method a generator

    builtin_wait = builtin_trap = builtin_umask = builtin_cd

    def fields(self, word: Word) -> list[str]:
        """Expand a word into fields: unquoted expansions are split on blanks, quoted text is kept."""
        fields: list[str] = []
        current: list[str] = []
        keep = False
        for part in word:
            if isinstance(part, Lit) or part.quoted:
                current.append(part.text if isinstance(part, Lit) else self.expand(part))
                keep = keep or part.quoted
                continue
            chunks = re.split(r"[ \t\n]+", self.expand(part))
            current.append(chunks[0])
            for chunk in chunks[1:]:
                if keep or "".join(current):
                    fields.append("".join(current))
                current, keep = [chunk], False
        if keep or "".join(current):
            fields.append("".join(current))
        return fields

    def string(self, word: Word) -> str:
        return "".join(part.text if isinstance(part, Lit) else self.expand(part) for part in word)

    def value(self, name: str) -> str | None:
        specials = {"?": str(self.status), "#": str(len(self.positional)), "$": "1", "!": ""}
        specials |= {"@": " ".join(self.positional), "*": " ".join(self.positional)}
        specials |= {"-": "".join(sorted(self.flags)), "0": self.name}
        if name in specials:
            return specials[name]
        if name.isdigit():
            index = int(name) - 1
            return self.positional[index] if index < len(self.positional) else None
        return self.vars.get(name)

    def expand(self, param: Param) -> str:
        value = self.value(param.name)
        if param.op == "#":
            return str(len(value or ""))
        missing = value is None or (param.op.startswith(":") and value == "")
        op = param.op.lstrip(":")
        if op in ("-", "=") and missing:
            value = self.string(param.arg)
            if op == "=" and _NAME.fullmatch(param.name):
                self.vars[param.name] = value
        elif op == "+":
            value = "" if missing else self.string(param.arg)
        elif op == "?" and missing:
            message = self.string(param.arg) or "parameter not set"
            raise _ExpansionError(f"{param.name}: {message}")
        if value is None and "u" in self.flags and param.name not in ("@", "*"):
            raise _ExpansionError(f"{param.name}: parameter not set")
        return value or ""


def shell_main(argv: list[str], env: dict[str, str]) -> Events:
    """`sh [-eux] -c SCRIPT [NAME [ARGS...]]`; without `-c` a shell reads an empty stdin and exits."""
    args = argv[1:]
    flags, command_mode = "", False
    while args and args[0][:1] in ("-", "+") and args[0] not in ("-", "--"):
        option = args.pop(0)
        if option[1:] == "o" and args:
            flags += _FLAG_NAMES.get(args.pop(0), "") if option[0] == "-" else ""
        elif option[0] == "-":
            command_mode = command_mode or "c" in option
            flags += option[1:]
    if args and args[0] in ("-", "--"):
        args.pop(0)
    if command_mode and not args:
        yield Write(f"{argv[0]}: -c requires an argument\n", "stderr")
        return 2
    if not command_mode and args:
        yield Write(f"{argv[0]}: can't open '{args[0]}': No such file or directory\n", "stderr")
        return 2
    if not command_mode:
        return (yield from read_commands(Interpreter(argv[0], [], env, flags)))
    name = args[1] if len(args) > 1 else argv[0]
    return (yield from Interpreter(name, args[2:], env, flags).run_script(args[0]))


def read_commands(shell: Interpreter) -> Events:
    """A shell reading its commands from stdin, a line (or an unfinished construct) at a time.

    The prompts are busybox ash's for root (`/ # `, then `> ` while a construct is unfinished); the
    runner shows them only when stdin is a terminal. End of input ends the shell with the last status.
    """
    pending = ""
    while not shell.exited:
        line = yield Read("> " if pending else "/ # ")
        if not isinstance(line, str):
            if pending:
                yield Write(f"{shell.name}: syntax error: unexpected end of file\n", "stderr")
                return 2
            return shell.status
        text = pending + line
        try:
            parse_script(text)
        except ParseError as error:
            if any(marker in str(error) for marker in _INCOMPLETE):
                pending = text
                continue
        pending = ""
        yield from shell.run_script(text)
    return shell.status
