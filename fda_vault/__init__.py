"""fda-vault: verifiable, restorable ZIP backups of FDA 510(k) project folders.

The public API is what ``__all__`` lists; the modules behind it are private
(``fda_vault._backup``…), so no module name can hide a function of the same name. Each
name's module is imported on first use, so that a quick command (``fda-vault list``)
does not pay for every pydantic model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from fda_vault._audit import AuditEvent, TrailReport, check_trail, read_log
    from fda_vault._backup import BackupResult, backup, list_projects
    from fda_vault._catalog import (
        ArchiveContents,
        BackupList,
        BackupSummary,
        describe_archive,
        list_backups,
    )
    from fda_vault._checks import Problem
    from fda_vault._copy import CopiedArchive, CopyResult, copy_archives
    from fda_vault._crypto import Encryption, Keys
    from fda_vault._drill import DrillResult, drill
    from fda_vault._errors import (
        DecryptError,
        ExitCode,
        FdaVaultError,
        IntegrityError,
        InterruptedByUser,
        LockedError,
        OperationError,
        RefusedError,
        UsageError,
    )
    from fda_vault._guard import GuardResult, Snapshot, run_guarded, safeguard
    from fda_vault._jobconfig import JobConfig, load_config
    from fda_vault._keys import GeneratedKey, generate_key
    from fda_vault._manifest import BackupManifest, FileEntry, SkippedEntry
    from fda_vault._prune import (
        PruneDecision,
        PrunePlan,
        PruneResult,
        RetentionPolicy,
        plan_prune,
        prune,
    )
    from fda_vault._restore import ProjectPlan, RestorePlan, RestoreResult, plan_restore, restore
    from fda_vault._run import RunResult, run_job
    from fda_vault._status import JobStatus, job_status
    from fda_vault._verify import VerifyReport, VerifyResult, verify, verify_archive

__all__ = [
    "ArchiveContents",
    "AuditEvent",
    "BackupList",
    "BackupManifest",
    "BackupResult",
    "BackupSummary",
    "CopiedArchive",
    "CopyResult",
    "DecryptError",
    "DrillResult",
    "Encryption",
    "ExitCode",
    "FdaVaultError",
    "FileEntry",
    "GeneratedKey",
    "GuardResult",
    "IntegrityError",
    "InterruptedByUser",
    "JobConfig",
    "JobStatus",
    "Keys",
    "LockedError",
    "OperationError",
    "Problem",
    "ProjectPlan",
    "PruneDecision",
    "PrunePlan",
    "PruneResult",
    "RefusedError",
    "RestorePlan",
    "RestoreResult",
    "RetentionPolicy",
    "RunResult",
    "SkippedEntry",
    "Snapshot",
    "TrailReport",
    "UsageError",
    "VerifyReport",
    "VerifyResult",
    "__version__",
    "backup",
    "check_trail",
    "copy_archives",
    "describe_archive",
    "drill",
    "generate_key",
    "job_status",
    "list_backups",
    "list_projects",
    "load_config",
    "plan_prune",
    "plan_restore",
    "prune",
    "read_log",
    "restore",
    "run_guarded",
    "run_job",
    "safeguard",
    "verify",
    "verify_archive",
]

_EXPORTS: dict[str, str] = {
    "ArchiveContents": "fda_vault._catalog",
    "AuditEvent": "fda_vault._audit",
    "BackupList": "fda_vault._catalog",
    "BackupManifest": "fda_vault._manifest",
    "BackupResult": "fda_vault._backup",
    "BackupSummary": "fda_vault._catalog",
    "CopiedArchive": "fda_vault._copy",
    "CopyResult": "fda_vault._copy",
    "DecryptError": "fda_vault._errors",
    "DrillResult": "fda_vault._drill",
    "Encryption": "fda_vault._crypto",
    "ExitCode": "fda_vault._errors",
    "FdaVaultError": "fda_vault._errors",
    "FileEntry": "fda_vault._manifest",
    "GeneratedKey": "fda_vault._keys",
    "GuardResult": "fda_vault._guard",
    "IntegrityError": "fda_vault._errors",
    "InterruptedByUser": "fda_vault._errors",
    "JobConfig": "fda_vault._jobconfig",
    "JobStatus": "fda_vault._status",
    "Keys": "fda_vault._crypto",
    "LockedError": "fda_vault._errors",
    "OperationError": "fda_vault._errors",
    "Problem": "fda_vault._checks",
    "ProjectPlan": "fda_vault._restore",
    "PruneDecision": "fda_vault._prune",
    "PrunePlan": "fda_vault._prune",
    "PruneResult": "fda_vault._prune",
    "RefusedError": "fda_vault._errors",
    "RestorePlan": "fda_vault._restore",
    "RestoreResult": "fda_vault._restore",
    "RetentionPolicy": "fda_vault._prune",
    "RunResult": "fda_vault._run",
    "SkippedEntry": "fda_vault._manifest",
    "Snapshot": "fda_vault._guard",
    "TrailReport": "fda_vault._audit",
    "UsageError": "fda_vault._errors",
    "VerifyReport": "fda_vault._verify",
    "VerifyResult": "fda_vault._verify",
    "backup": "fda_vault._backup",
    "check_trail": "fda_vault._audit",
    "copy_archives": "fda_vault._copy",
    "describe_archive": "fda_vault._catalog",
    "drill": "fda_vault._drill",
    "generate_key": "fda_vault._keys",
    "job_status": "fda_vault._status",
    "list_backups": "fda_vault._catalog",
    "list_projects": "fda_vault._backup",
    "load_config": "fda_vault._jobconfig",
    "plan_prune": "fda_vault._prune",
    "plan_restore": "fda_vault._restore",
    "prune": "fda_vault._prune",
    "read_log": "fda_vault._audit",
    "restore": "fda_vault._restore",
    "run_guarded": "fda_vault._guard",
    "run_job": "fda_vault._run",
    "safeguard": "fda_vault._guard",
    "verify": "fda_vault._verify",
    "verify_archive": "fda_vault._verify",
}


def __getattr__(name: str) -> Any:
    """Import a public name's (private) module when the name is first used."""
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'fda_vault' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next use is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
