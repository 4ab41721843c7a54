"""Exit codes and the one error hierarchy of fda-vault.

Every expected failure is an ``FdaVaultError`` that carries its exit code
(DESIGN.md) and a one-line message; ``cli.py`` maps it to the exit in one place::

    FdaVaultError                 base, never raised itself
    ├── UsageError            2   bad option, unknown project, archive missing
    ├── OperationError        1   I/O error, disk full, unreadable source file
    │   └── LockedError       1   another run holds the lock
    ├── IntegrityError        3   archive damaged, tampered with, unsafe, foreign
    ├── RefusedError          4   restore would overwrite without consent
    └── InterruptedByUser  130   Ctrl-C; begun work rolled back
"""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path

__all__ = [
    "ExitCode",
    "FdaVaultError",
    "IntegrityError",
    "InterruptedByUser",
    "LockedError",
    "OperationError",
    "RefusedError",
    "UsageError",
]


class ExitCode(IntEnum):
    """Process exit codes, as documented in DESIGN.md and the README."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    INTEGRITY = 3
    REFUSED = 4
    DIFFERENCES = 6  # only `diff --exit-code`
    INTERRUPTED = 130


class FdaVaultError(Exception):
    """Base of every expected failure: a message naming the file and the cause."""

    exit_code: ExitCode = ExitCode.FAILURE
    kind: str = "error"

    def __init__(self, what: str | Path, why: str = "") -> None:
        self.what = str(what)
        self.why = why
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The single line shown after ``error: ``."""
        return f"{self.what} — {self.why}" if self.why else self.what


class UsageError(FdaVaultError):
    """The command line asked for something that cannot be (exit 2)."""

    exit_code = ExitCode.USAGE
    kind = "usage"


class OperationError(FdaVaultError):
    """The environment failed us: I/O error, disk full, permission denied (exit 1)."""

    exit_code = ExitCode.FAILURE
    kind = "failure"


class LockedError(OperationError):
    """Another fda-vault run holds the lock on this folder (exit 1)."""

    kind = "locked"


class IntegrityError(FdaVaultError):
    """An archive is damaged, tampered with, unsafe or not ours (exit 3)."""

    exit_code = ExitCode.INTEGRITY
    kind = "integrity"


class RefusedError(FdaVaultError):
    """A restore would overwrite and nobody allowed it (exit 4)."""

    exit_code = ExitCode.REFUSED
    kind = "refused"


class InterruptedByUser(FdaVaultError):
    """Ctrl-C: what was begun has been rolled back (exit 130)."""

    exit_code = ExitCode.INTERRUPTED
    kind = "interrupted"
