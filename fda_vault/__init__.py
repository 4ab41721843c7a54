"""fda-vault: verifiable, restorable ZIP backups of FDA 510(k) project folders."""

from __future__ import annotations

__version__ = "0.1.0"

from fda_vault.backup import BackupResult, backup, list_projects
from fda_vault.catalog import (
    ArchiveContents,
    BackupList,
    BackupSummary,
    describe_archive,
    list_backups,
)
from fda_vault.errors import (
    ExitCode,
    FdaVaultError,
    IntegrityError,
    InterruptedByUser,
    LockedError,
    OperationError,
    RefusedError,
    UsageError,
)
from fda_vault.guard import GuardResult, Snapshot, run_guarded, safeguard
from fda_vault.manifest import BackupManifest, FileEntry, SkippedEntry
from fda_vault.prune import (
    PruneDecision,
    PrunePlan,
    PruneResult,
    RetentionPolicy,
    plan_prune,
    prune,
)
from fda_vault.restore import ProjectPlan, RestorePlan, RestoreResult, plan_restore, restore
from fda_vault.verify import Problem, VerifyReport, VerifyResult, verify, verify_archive

__all__ = [
    "ArchiveContents",
    "BackupList",
    "BackupManifest",
    "BackupResult",
    "BackupSummary",
    "ExitCode",
    "FdaVaultError",
    "FileEntry",
    "GuardResult",
    "IntegrityError",
    "InterruptedByUser",
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
    "SkippedEntry",
    "Snapshot",
    "UsageError",
    "VerifyReport",
    "VerifyResult",
    "__version__",
    "backup",
    "describe_archive",
    "list_backups",
    "list_projects",
    "plan_prune",
    "plan_restore",
    "prune",
    "restore",
    "run_guarded",
    "safeguard",
    "verify",
    "verify_archive",
]
