"""Exit codes and the one error hierarchy of fda-vault.

Every expected failure is an ``FdaVaultError`` that carries its exit code
(DESIGN.md) and a one-line message; ``cli.py`` maps it to the exit in one place::

    FdaVaultError                 base, never raised itself
    ├── UsageError            2   bad option, unknown project, archive missing
    ├── OperationError        1   I/O error, disk full, unreadable source file
    │   └── LockedError       1   another run holds the lock
    ├── IntegrityError        3   archive damaged, tampered with, unsafe, foreign
    ├── RefusedError          4   restore would overwrite without consent
    ├── DecryptError          5   no key or passphrase given, or the wrong one
    └── InterruptedByUser  130   Ctrl-C; begun work rolled back

Each error also carries a stable, machine-readable ``reason`` (:data:`REASONS`), which
``--json`` error objects include: scripts test the reason, never the message text.
"""

from __future__ import annotations

import errno
from enum import IntEnum

__all__ = [
    "REASONS",
    "DecryptError",
    "ExitCode",
    "FdaVaultError",
    "IntegrityError",
    "InterruptedByUser",
    "LockedError",
    "OperationError",
    "RefusedError",
    "UsageError",
    "os_error_reason",
]


class ExitCode(IntEnum):
    """Process exit codes, as documented in DESIGN.md and the README."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    INTEGRITY = 3
    REFUSED = 4
    CANNOT_DECRYPT = 5
    DIFFERENCES = 6  # only `diff --exit-code`
    INTERRUPTED = 130


# Every reason an error can carry, with what it means (the README's JSON section lists
# them; a test keeps the two in step).
REASONS: dict[str, str] = {
    "usage": "a bad option or argument",
    "not_found": "a file or folder given does not exist (or is not the kind expected)",
    "unknown_project": "a project name that the projects folder or archive does not have",
    "disk_full": "no space (or quota) left on the device",
    "permission_denied": "the operating system refused access",
    "read_only": "the file system is read-only",
    "io_error": "another input/output error (the message gives the system's text)",
    "locked": "another fda-vault run holds the folder",
    "changed_while_read": "a file or project changed while it was being backed up",
    "damaged": "an archive is damaged, truncated, tampered with or not an archive",
    "unsafe": "an archive holds an unsafe name or entry (traversal, symlink, bomb)",
    "refused": "a restore would overwrite, or a prune delete, without consent",
    "interrupted": "Ctrl-C, SIGTERM or SIGHUP; what was begun was rolled back",
    "access_denied": "the object store refused the credentials or the permission",
    "no_such_bucket": "the s3:// bucket does not exist",
    "no_credentials": "no AWS credentials were found for an s3:// location",
    "network": "the object store could not be reached, or the connection broke",
    "server_error": "the object store answered with an error (after retries)",
    "no_key": "an archive is encrypted and no age identity or passphrase was given",
    "wrong_key": "the age identity or passphrase given does not open the archive",
    "untrusted": "an archive's signature is missing, invalid or by a key not trusted",
    "trail_broken": "the audit trail's chain or an archive's anchor of it does not hold",
    "unexpected": "an unexpected error (a bug: please report it)",
    # Warnings (the run went on):
    "left_out": "a file was not backed up (a symlink, a special file, unreadable with "
    "--skip-unreadable, deleted or changing while read); the manifest lists it",
    "recovered": "an interrupted restore was finished or rolled back first",
    "same_disk": "the backups are inside the projects folder, on the same disk",
    "parent_unusable": "an earlier backup could not be read to copy unchanged files from",
    "parent_damaged": "a file's stored bytes in the parent backup did not match their "
    "checksum; it was read from the source instead",
}


class FdaVaultError(Exception):
    """Base of every expected failure: a message naming the file and the cause."""

    exit_code: ExitCode = ExitCode.FAILURE
    kind: str = "error"
    default_reason: str = "io_error"

    def __init__(self, what: object, why: str = "", *, reason: str | None = None) -> None:
        self.what = str(what)
        self.why = why
        self.reason = reason or self.default_reason
        assert self.reason in REASONS, self.reason
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The single line shown after ``error: ``."""
        return f"{self.what} — {self.why}" if self.why else self.what

    def __reduce__(self) -> tuple[object, ...]:
        # Pickled whole (a worker process hands its failure back): what, why and reason.
        return (_rebuild, (type(self), self.what, self.why, self.reason))


def _rebuild(cls: type[FdaVaultError], what: str, why: str, reason: str) -> FdaVaultError:
    return cls(what, why, reason=reason)


class UsageError(FdaVaultError):
    """The command line asked for something that cannot be (exit 2)."""

    exit_code = ExitCode.USAGE
    kind = "usage"
    default_reason = "usage"


class OperationError(FdaVaultError):
    """The environment failed us: I/O error, disk full, permission denied (exit 1)."""

    exit_code = ExitCode.FAILURE
    kind = "failure"
    default_reason = "io_error"


class LockedError(OperationError):
    """Another fda-vault run holds the lock on this folder (exit 1)."""

    kind = "locked"
    default_reason = "locked"


class IntegrityError(FdaVaultError):
    """An archive is damaged, tampered with, unsafe or not ours (exit 3)."""

    exit_code = ExitCode.INTEGRITY
    kind = "integrity"
    default_reason = "damaged"


class RefusedError(FdaVaultError):
    """A restore would overwrite and nobody allowed it (exit 4)."""

    exit_code = ExitCode.REFUSED
    kind = "refused"
    default_reason = "refused"


class DecryptError(FdaVaultError):
    """An encrypted archive cannot be opened: no key or passphrase, or the wrong one
    (exit 5). A key that opens it and data that then fail their check is damage (3)."""

    exit_code = ExitCode.CANNOT_DECRYPT
    kind = "cannot_decrypt"
    default_reason = "wrong_key"


class InterruptedByUser(FdaVaultError):
    """Ctrl-C: what was begun has been rolled back (exit 130)."""

    exit_code = ExitCode.INTERRUPTED
    kind = "interrupted"
    default_reason = "interrupted"


def os_error_reason(exc: OSError) -> str:
    """The reason for an ``OSError``: disk_full, permission_denied, read_only, not_found
    or io_error (one mapping for every place that turns one into an error)."""
    return {
        errno.ENOSPC: "disk_full",
        errno.EDQUOT: "disk_full",
        errno.EACCES: "permission_denied",
        errno.EPERM: "permission_denied",
        errno.EROFS: "read_only",
        errno.ENOENT: "not_found",
    }.get(exc.errno or 0, "io_error")
