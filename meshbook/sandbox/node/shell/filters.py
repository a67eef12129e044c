"""Text filters for pipelines (`env | grep VAULT`, `... | head -n 3`, `wc -l`) and `hostname`.

Like the utilities, each is a generator of effects: it reads its input line by line with `Read`
(files named as operands with `Open`) and returns its exit status, with busybox's options and texts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator

from meshbook.sandbox.node.shell.utilities import Answer, Effect, Events, Invocation, Open, Read, Write

Lines = Generator[Effect, Answer, list[str] | None]


def _input(paths: list[str], tool: str, errors: list[str]) -> Lines:
    """All lines of the operands (stdin when none or `-`); missing files are noted in `errors`."""
    lines: list[str] = []
    for path in paths or ["-"]:
        if path == "-":
            while isinstance(line := (yield Read()), str):
                lines.append(line)
            continue
        text = yield Open(path)
        if not isinstance(text, str):
            errors.append(f"{tool}: {path}: No such file or directory\n")
            continue
        lines.extend(text.splitlines(keepends=True))
    return lines


def _options(args: list[str], flags: str, valued: str = "") -> tuple[set[str], dict[str, str], list[str]]:
    """Short options as busybox's getopt reads them (`-vi`, `-n 3`, `-n3`), then the operands."""
    seen: set[str] = set()
    values: dict[str, str] = {}
    rest = list(args)
    while rest and rest[0].startswith("-") and rest[0] != "-":
        arg = rest.pop(0)
        if arg == "--":
            break
        i = 1
        while i < len(arg):
            letter = arg[i]
            if letter in valued:
                values[letter] = arg[i + 1 :] or (rest.pop(0) if rest else "")
                break
            if letter.isdigit() and "n" in valued:  # `head -3`
                values["n"] = arg[i:]
                break
            if letter not in flags:
                raise ValueError(f"invalid option -- '{letter}'")
            seen.add(letter)
            i += 1
    return seen, values, rest


def grep(inv: Invocation) -> Events:
    try:
        seen, values, rest = _options(inv.args, "viqcnEFwxs", "e")
    except ValueError as error:
        yield Write(f"grep: {error}\n", "stderr")
        return 2
    pattern = values.get("e")
    if pattern is None:
        if not rest:
            yield Write("Usage: grep [-viqcnEFwxs] PATTERN/-e PATTERN [FILE]...\n", "stderr")
            return 2
        pattern = rest.pop(0)
    text = re.escape(pattern) if "F" in seen else pattern if "E" in seen else _basic_regex(pattern)
    if "w" in seen:
        text = rf"\b(?:{text})\b"
    try:
        regex = re.compile(rf"^(?:{text})$" if "x" in seen else text, re.IGNORECASE if "i" in seen else 0)
    except re.error as exc:
        yield Write(f"grep: bad regex '{pattern}': {exc.msg}\n", "stderr")
        return 2
    errors: list[str] = []
    lines = (yield from _input(rest, "grep", errors)) or []
    matched = [(n, line) for n, line in enumerate(lines, 1) if bool(regex.search(line.rstrip("\n"))) != ("v" in seen)]
    if "q" not in seen:
        if "c" in seen:
            yield Write(f"{len(matched)}\n")
        else:
            for n, line in matched:
                yield Write((f"{n}:" if "n" in seen else "") + line + ("" if line.endswith("\n") else "\n"))
    for problem in errors if "s" not in seen else []:
        yield Write(problem, "stderr")
    return 2 if errors and not ("q" in seen and matched) else 0 if matched else 1


def _basic_regex(pattern: str) -> str:
    """A POSIX basic regular expression in Python's syntax: `\\(\\)\\{\\}\\|\\+\\?` are the operators."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            out.append(nxt if nxt in "(){}|+?" else "\\" + nxt)
            i += 2
            continue
        out.append("\\" + char if char in "(){}|+?" else char)
        i += 1
    return "".join(out)


def _count(values: dict[str, str], tool: str) -> int:
    raw = values.get("n", "10")
    if not raw.lstrip("-").isdigit():
        raise ValueError(f"{tool}: invalid number '{raw}'")
    return int(raw)


def head(inv: Invocation) -> Events:
    return (yield from _slice(inv, "head"))


def tail(inv: Invocation) -> Events:
    return (yield from _slice(inv, "tail"))


def _slice(inv: Invocation, tool: str) -> Events:
    try:
        _, values, rest = _options(inv.args, "", "n")
        count = _count(values, tool)
    except ValueError as error:
        yield Write(f"{error}\n", "stderr")
        return 1
    errors: list[str] = []
    lines = (yield from _input(rest, tool, errors)) or []
    chosen = lines[:count] if tool == "head" else lines[-count:] if count else []
    yield Write("".join(chosen))
    for problem in errors:
        yield Write(problem, "stderr")
    return 1 if errors else 0


def wc(inv: Invocation) -> Events:
    try:
        seen, _, rest = _options(inv.args, "lwc")
    except ValueError as error:
        yield Write(f"wc: {error}\n", "stderr")
        return 1
    errors: list[str] = []
    text = "".join((yield from _input(rest, "wc", errors)) or [])
    counts = {"l": str(text.count("\n")), "w": str(len(text.split())), "c": str(len(text.encode()))}
    shown = [counts[k] for k in "lwc" if k in seen] or list(counts.values())
    yield Write((" ".join(shown) if len(shown) == 1 else " ".join(f"{c:>7}" for c in shown)) + "\n")
    for problem in errors:
        yield Write(problem, "stderr")
    return 1 if errors else 0


def hostname(inv: Invocation) -> Events:
    yield Write(inv.env.get("HOSTNAME", "localhost") + "\n")
    return 0


FILTERS: dict[str, Callable[[Invocation], Events]] = {
    "grep": grep,
    "head": head,
    "tail": tail,
    "wc": wc,
    "hostname": hostname,
}
