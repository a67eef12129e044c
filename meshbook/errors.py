"""Errors and exit codes shared by every layer.

Each error carries the exit code `meshbook` returns for it, so the CLI maps errors to codes in one place
and every message names the object, what was expected, what was observed and what to do.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of `meshbook` (documented in README and docs/architecture.md)."""

    OK = 0
    EXPECTATION_FAILED = 1
    BAD_INPUT = 2
    UNREACHABLE = 3
    TIMEOUT = 4
    NOT_AVAILABLE = 5


class MeshbookError(Exception):
    """Base of every error meshbook raises on purpose; the message is shown to the user as is."""

    exit_code: ExitCode = ExitCode.EXPECTATION_FAILED


class ParameterError(MeshbookError):
    """Parameters (files, `--set`, CLI flags) are invalid; nothing was executed."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class UnreachableError(MeshbookError):
    """The cluster, Vault or a kernel could not be reached or died."""

    exit_code = ExitCode.UNREACHABLE


class StorageError(UnreachableError):
    """The run directory cannot be written (disk full, read-only, removed): the message names the path
    and the OS error; what was written before stays intact."""

    def __init__(self, path: object, exc: OSError) -> None:
        super().__init__(
            f"cannot write {path}: {exc.strerror or exc} (errno {exc.errno}); free space or fix the folder"
        )


class WaitTimeoutError(MeshbookError):
    """Something awaited did not happen in time; the message says what was awaited and last seen."""

    exit_code = ExitCode.TIMEOUT


class NotAvailableError(MeshbookError):
    """The requested feature is not part of this version yet."""

    exit_code = ExitCode.NOT_AVAILABLE


class ExpectationFailed(MeshbookError):
    """A runbook's expectation did not hold; the message lists which and why."""

    exit_code = ExitCode.EXPECTATION_FAILED
