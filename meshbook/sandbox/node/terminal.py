"""An exec session's stdin as lines, and on a tty the terminal's line discipline.

`kubectl exec -it` puts the local terminal in raw mode and sends every key press; on a real node the
pty's line discipline (canonical mode, `ECHO`, `ICRNL`, `ONLCR`) echoes them, edits the line and hands
the program whole lines. `LineInput` does the same for the sandbox's programs: Enter completes a line,
Backspace erases, Ctrl-U kills the line, Ctrl-D at the start of a line is end of input and Ctrl-C
discards the line (`^C`); escape sequences (arrow keys) are dropped, since there is no line history.
Without a tty, bytes are split into lines as they come and nothing is echoed.
"""

from __future__ import annotations

import asyncio
from collections import deque

_ERASE = frozenset({"\x7f", "\x08"})
_ENTER = frozenset({"\r", "\n"})
_KILL, _EOF, _INTERRUPT, _ESC = "\x15", "\x04", "\x03", "\x1b"


def to_terminal(data: bytes) -> bytes:
    """Output through a pty with `ONLCR`: every newline becomes CR LF."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class LineInput:
    """Stdin of one exec session: `feed` what the client sends, `readline` what the program reads."""

    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self._echo: list[str] = []
        self._lines: deque[str] = deque()
        self._partial = ""
        self._escape = ""  # an escape sequence being dropped
        self._closed = False
        self._changed = asyncio.Event()

    def feed(self, data: bytes) -> bytes:
        """Take client bytes; returns what the terminal echoes back (nothing without a tty)."""
        text = data.decode("utf-8", errors="surrogateescape")
        if self.tty:
            for char in text:
                self._key(char)
        else:
            *complete, self._partial = (self._partial + text).split("\n")
            self._lines.extend(line + "\n" for line in complete)
        self._changed.set()
        echo, self._echo = "".join(self._echo), []
        return echo.encode("utf-8", errors="surrogateescape")

    def close(self) -> None:
        """End of input (the client closed stdin, or the connection ended)."""
        self._closed = True
        self._changed.set()

    async def readline(self) -> str | None:
        """The next line with its newline, the last unterminated text, or None at end of input."""
        while True:
            if self._lines:
                line = self._lines.popleft()
                return None if line == _EOF else line
            if self._closed:
                if self._partial:
                    line, self._partial = self._partial, ""
                    return line
                return None
            self._changed.clear()
            await self._changed.wait()

    def _show(self, text: str) -> None:
        self._echo.append(text)

    def _key(self, char: str) -> None:
        if self._escape or char == _ESC:
            self._escape += char
            if len(self._escape) > 1 and (self._escape[1] != "[" or char.isalpha() or char == "~"):
                self._escape = ""  # ESC x, or the final byte of ESC [ ... ended the sequence
            return
        if char in _ENTER:
            self._show("\r\n")
            self._lines.append(self._partial + "\n")
            self._partial = ""
        elif char in _ERASE:
            if self._partial:
                self._partial = self._partial[:-1]
                self._show("\b \b")
        elif char == _KILL:
            self._show("\b \b" * len(self._partial))
            self._partial = ""
        elif char == _INTERRUPT:
            self._show("^C\r\n")
            self._partial = ""
            self._lines.append("\n")  # the shell shows a new prompt, as after SIGINT
        elif char == _EOF:
            if self._partial:
                self._lines.append(self._partial)
                self._partial = ""
            else:
                self._lines.append(_EOF)
        elif char >= " " or char == "\t":
            self._partial += char
            self._show(char)
