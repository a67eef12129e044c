"""Lexer and parser for the small POSIX-sh subset that sandbox containers run (see `shell.py`).

Parsing is separate from running so that a syntax error is found before anything runs, as in a real
shell, and so the interpreter works on a small immutable tree instead of on text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RESERVED = frozenset({"if", "then", "elif", "else", "fi", "while", "until", "for", "do", "done", "in"})
UNSUPPORTED_WORDS = frozenset({"case", "esac", "{", "}", "!", "[[", "function", "select"})
_OPERATORS = ("&&", "||", ";;", ">>", ">&", "<&", ">|", ";", "&", "|", "(", ")", "<", ">")
_REDIRECTS = frozenset({">", ">>", ">|", ">&", "<", "<&"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DIGITS = re.compile(r"[0-9]+")
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")
_PARAM_OPS = (":-", ":=", ":+", ":?", "-", "=", "+", "?")


class ParseError(Exception):
    """The script is not valid sh, or uses a construct the sandbox shell does not run."""


@dataclass(frozen=True)
class Lit:
    """Literal text; `quoted` text is never split into fields."""

    text: str
    quoted: bool


@dataclass(frozen=True)
class Param:
    """A parameter expansion: `$NAME`, `${NAME}`, `${NAME:-arg}`, `${#NAME}`, `$?`, `$1`..."""

    name: str
    op: str = ""
    arg: tuple[Lit | Param, ...] = ()
    quoted: bool = False


Word = tuple[Lit | Param, ...]


@dataclass(frozen=True)
class Redirect:
    fd: int
    op: str
    target: Word


@dataclass(frozen=True)
class Simple:
    assigns: tuple[tuple[str, Word], ...]
    words: tuple[Word, ...]
    redirects: tuple[Redirect, ...]


@dataclass(frozen=True)
class If:
    branches: tuple[tuple[Program, Program], ...]
    orelse: Program


@dataclass(frozen=True)
class Loop:
    until: bool
    cond: Program
    body: Program


@dataclass(frozen=True)
class For:
    name: str
    items: tuple[Word, ...] | None
    body: Program


@dataclass(frozen=True)
class Pipeline:
    """`a | b | c`: each command's stdout is the next one's stdin."""

    commands: tuple[Simple | If | Loop | For, ...]


Command = Simple | If | Loop | For | Pipeline


@dataclass(frozen=True)
class AndOr:
    first: Command
    rest: tuple[tuple[str, Command], ...]


Program = tuple[AndOr, ...]


@dataclass(frozen=True)
class Token:
    kind: str  # "word", "op", "newline" or "eof"
    text: str
    word: Word = ()
    fd: int | None = None

    @property
    def reserved(self) -> str | None:
        """The reserved word this token spells, if it is one unquoted literal."""
        plain = len(self.word) == 1 and isinstance(self.word[0], Lit) and not self.word[0].quoted
        return self.text if self.kind == "word" and plain else None


def _unsupported(what: str) -> ParseError:
    return ParseError(f"syntax error: {what} is not supported by the sandbox shell")


class _Lexer:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def peek(self, offset: int = 0) -> str:
        j = self.i + offset
        return self.s[j] if j < len(self.s) else ""

    def tokens(self) -> list[Token]:
        out: list[Token] = []
        fd: int | None = None
        while True:
            c = self.peek()
            if c in (" ", "\t"):
                self.i += 1
            elif c == "\\" and self.peek(1) == "\n":
                self.i += 2
            elif c == "\n":
                out.append(Token("newline", "newline"))
                self.i += 1
            elif c == "#":
                while self.peek() not in ("", "\n"):
                    self.i += 1
            elif c == "":
                out.append(Token("eof", "end of file"))
                return out
            elif op := next((o for o in _OPERATORS if self.s.startswith(o, self.i)), None):
                self.i += len(op)
                out.append(Token("op", op, fd=fd if op in _REDIRECTS else None))
                fd = None
            else:
                start = self.i
                word = self.word(stop=" \t\n;&|()<>", quoted=False)
                raw = self.s[start : self.i]
                if raw.isdigit() and self.peek() in ("<", ">"):
                    fd = int(raw)
                else:
                    out.append(Token("word", raw, word))

    def word(self, stop: str, quoted: bool) -> Word:
        parts: list[Lit | Param] = []
        while (c := self.peek()) and c not in stop:
            if c == "\\":
                nxt = self.peek(1)
                self.i += 2
                if nxt == "\n":
                    continue
                keep = not quoted or nxt in '$`"\\}'
                parts.append(Lit(nxt if keep else "\\" + nxt, True))
            elif c == "'" and not quoted:
                end = self.s.find("'", self.i + 1)
                if end < 0:
                    raise ParseError("syntax error: unterminated quoted string")
                parts.append(Lit(self.s[self.i + 1 : end], True))
                self.i = end + 1
            elif c == '"':
                self.i += 1
                parts.extend(self.word(stop='"', quoted=True))
                if self.peek() != '"':
                    raise ParseError("syntax error: unterminated quoted string")
                self.i += 1
                parts.append(Lit("", True))  # keeps `""` a word of its own
            elif c == "$":
                parts.append(self.dollar(quoted))
            elif c == "`":
                raise _unsupported("command substitution `...`")
            else:
                parts.append(Lit(c, quoted))
                self.i += 1
        return _merge(parts)

    def dollar(self, quoted: bool) -> Lit | Param:
        self.i += 1
        c = self.peek()
        if c == "{":
            self.i += 1
            return self.braced(quoted)
        if c == "(":
            raise _unsupported("command substitution $(...)")
        if match := _NAME.match(self.s, self.i):
            self.i = match.end()
            return Param(match.group(), quoted=quoted)
        if c and (c.isdigit() or c in "?#@*$!-"):
            self.i += 1
            return Param(c, quoted=quoted)
        return Lit("$", quoted)

    def braced(self, quoted: bool) -> Param:
        length = self.peek() == "#" and self.peek(1) not in ("}", "")
        if length:
            self.i += 1
        match = _NAME.match(self.s, self.i) or _DIGITS.match(self.s, self.i)
        if match:
            name = match.group()
        elif self.peek() and self.peek() in "?#@*$!-":
            name = self.peek()
        else:
            raise ParseError("syntax error: bad substitution")
        self.i += len(name)
        if length:
            self._expect_brace()
            return Param(name, op="#", quoted=quoted)
        op = next((o for o in _PARAM_OPS if self.s.startswith(o, self.i)), "")
        self.i += len(op)
        arg = self.word(stop="}", quoted=quoted) if op else ()
        self._expect_brace()
        return Param(name, op=op, arg=arg, quoted=quoted)

    def _expect_brace(self) -> None:
        if self.peek() != "}":
            raise ParseError("syntax error: bad substitution")
        self.i += 1


def _merge(parts: list[Lit | Param]) -> Word:
    merged: list[Lit | Param] = []
    for part in parts:
        last = merged[-1] if merged else None
        if isinstance(part, Lit) and isinstance(last, Lit) and last.quoted == part.quoted:
            merged[-1] = Lit(last.text + part.text, part.quoted)
        else:
            merged.append(part)
    return tuple(merged)


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.toks = tokens
        self.pos = 0

    @property
    def tok(self) -> Token:
        return self.toks[self.pos]

    def advance(self) -> Token:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def unexpected(self) -> ParseError:
        tok = self.tok
        if tok.kind in ("eof", "newline"):
            return ParseError(f"syntax error: unexpected {tok.text}")
        return ParseError(f'syntax error: unexpected "{tok.text}"')

    def skip_newlines(self) -> None:
        while self.tok.kind == "newline":
            self.advance()

    def program(self, stop: frozenset[str] = frozenset()) -> Program:
        items: list[AndOr] = []
        while True:
            self.skip_newlines()
            if self.tok.kind == "eof" or self.tok.reserved in stop:
                return tuple(items)
            items.append(self.and_or())
            if self.tok.kind == "op" and self.tok.text == "&":
                raise _unsupported('background "&"')
            if self.tok.kind == "newline" or (self.tok.kind == "op" and self.tok.text == ";"):
                self.advance()
            elif self.tok.kind != "eof" and self.tok.reserved not in stop:
                raise self.unexpected()

    def body(self, stop: frozenset[str]) -> Program:
        """A non-empty list ending at one of the `stop` words (checked by the caller)."""
        items = self.program(stop)
        if not items:
            raise self.unexpected()
        return items

    def expect(self, word: str) -> None:
        if self.tok.reserved != word:
            raise self.unexpected()
        self.advance()

    def and_or(self) -> AndOr:
        first = self.pipeline()
        rest: list[tuple[str, Command]] = []
        while self.tok.kind == "op" and self.tok.text in ("&&", "||"):
            op = self.advance().text
            self.skip_newlines()
            rest.append((op, self.pipeline()))
        return AndOr(first, tuple(rest))

    def pipeline(self) -> Command:
        commands = [self.command()]
        while self.tok.kind == "op" and self.tok.text == "|":
            self.advance()
            self.skip_newlines()
            commands.append(self.command())
        return commands[0] if len(commands) == 1 else Pipeline(tuple(commands))

    def command(self) -> Simple | If | Loop | For:
        tok = self.tok
        if tok.kind == "op" and tok.text == "(":
            raise _unsupported('subshell "("')
        if (tok.kind == "op" and tok.text not in _REDIRECTS) or tok.kind in ("eof", "newline"):
            raise self.unexpected()
        word = tok.reserved
        if word in UNSUPPORTED_WORDS:
            raise _unsupported(f'"{word}"')
        if word == "if":
            return self.if_clause()
        if word in ("while", "until"):
            self.advance()
            cond = self.body(frozenset({"do"}))
            self.expect("do")
            body = self.body(frozenset({"done"}))
            self.expect("done")
            return Loop(word == "until", cond, body)
        if word == "for":
            return self.for_clause()
        if word in RESERVED:
            raise self.unexpected()
        return self.simple()

    def if_clause(self) -> If:
        branches: list[tuple[Program, Program]] = []
        orelse: Program = ()
        keyword = "if"
        while keyword in ("if", "elif"):
            self.advance()
            cond = self.body(frozenset({"then"}))
            self.expect("then")
            branches.append((cond, self.body(frozenset({"elif", "else", "fi"}))))
            keyword = self.tok.reserved or ""
        if keyword == "else":
            self.advance()
            orelse = self.body(frozenset({"fi"}))
        self.expect("fi")
        return If(tuple(branches), orelse)

    def for_clause(self) -> For:
        self.advance()
        name = self.tok.text if self.tok.kind == "word" and _NAME.fullmatch(self.tok.text) else None
        if name is None:
            raise ParseError(f'syntax error: bad for loop variable "{self.tok.text}"')
        self.advance()
        self.skip_newlines()
        items: list[Word] | None = None
        if self.tok.reserved == "in":
            self.advance()
            items = []
            while self.tok.kind == "word":
                items.append(self.advance().word)
        if self.tok.kind == "newline" or (self.tok.kind == "op" and self.tok.text == ";"):
            self.advance()
        self.skip_newlines()
        self.expect("do")
        body = self.body(frozenset({"done"}))
        self.expect("done")
        return For(name, None if items is None else tuple(items), body)

    def simple(self) -> Simple:
        assigns: list[tuple[str, Word]] = []
        words: list[Word] = []
        redirects: list[Redirect] = []
        while True:
            tok = self.tok
            if tok.kind == "op" and tok.text in _REDIRECTS:
                self.advance()
                if self.tok.kind != "word":
                    raise self.unexpected()
                target = self.advance().word
                default_fd = 0 if tok.text.startswith("<") else 1
                redirects.append(Redirect(default_fd if tok.fd is None else tok.fd, tok.text, target))
            elif tok.kind == "word":
                if not words and (assign := _split_assignment(tok.word)):
                    assigns.append(assign)
                elif not words and self.toks[self.pos + 1].text == "(":
                    raise _unsupported("function definition")
                else:
                    words.append(tok.word)
                self.advance()
            else:
                return Simple(tuple(assigns), tuple(words), tuple(redirects))


def _split_assignment(word: Word) -> tuple[str, Word] | None:
    head = word[0] if word else None
    if not isinstance(head, Lit) or head.quoted or not (match := _ASSIGNMENT.match(head.text)):
        return None
    rest = head.text[match.end() :]
    value: Word = ((Lit(rest, False),) if rest else ()) + word[1:]
    return match.group(1), value


def parse_script(text: str) -> Program:
    """Parse a `sh -c` script; raises ParseError with an sh-like message (without the `sh: ` prefix)."""
    parser = _Parser(_Lexer(text).tokens())
    program = parser.program()
    if parser.tok.kind != "eof":
        raise parser.unexpected()
    return program
