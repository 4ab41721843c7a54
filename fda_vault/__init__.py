"""fda-vault: verifiable, restorable ZIP backups of FDA 510(k) project folders.

The public API is what ``__all__`` lists. Each name's module is imported on first use,
so that a quick command (``fda-vault list``) does not pay for every pydantic model.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from fda_vault.backup import BackupResult, backup, list_projects
    from fda_vault.catalog import (
        ArchiveContents,
        BackupList,
        BackupSummary,
        describe_archive,
        list_backups,
    )
    from fda_vault.checks import Problem
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
    from fda_vault.verify import VerifyReport, VerifyResult, verify, verify_archive

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

_EXPORTS: dict[str, str] = {
    "ArchiveContents": "fda_vault.catalog",
    "BackupList": "fda_vault.catalog",
    "BackupManifest": "fda_vault.manifest",
    "BackupResult": "fda_vault.backup",
    "BackupSummary": "fda_vault.catalog",
    "ExitCode": "fda_vault.errors",
    "FdaVaultError": "fda_vault.errors",
    "FileEntry": "fda_vault.manifest",
    "GuardResult": "fda_vault.guard",
    "IntegrityError": "fda_vault.errors",
    "InterruptedByUser": "fda_vault.errors",
    "LockedError": "fda_vault.errors",
    "OperationError": "fda_vault.errors",
    "Problem": "fda_vault.checks",
    "ProjectPlan": "fda_vault.restore",
    "PruneDecision": "fda_vault.prune",
    "PrunePlan": "fda_vault.prune",
    "PruneResult": "fda_vault.prune",
    "RefusedError": "fda_vault.errors",
    "RestorePlan": "fda_vault.restore",
    "RestoreResult": "fda_vault.restore",
    "RetentionPolicy": "fda_vault.prune",
    "SkippedEntry": "fda_vault.manifest",
    "Snapshot": "fda_vault.guard",
    "UsageError": "fda_vault.errors",
    "VerifyReport": "fda_vault.verify",
    "VerifyResult": "fda_vault.verify",
    "backup": "fda_vault.backup",
    "describe_archive": "fda_vault.catalog",
    "list_backups": "fda_vault.catalog",
    "list_projects": "fda_vault.backup",
    "plan_prune": "fda_vault.prune",
    "plan_restore": "fda_vault.restore",
    "prune": "fda_vault.prune",
    "restore": "fda_vault.restore",
    "run_guarded": "fda_vault.guard",
    "safeguard": "fda_vault.guard",
    "verify": "fda_vault.verify",
    "verify_archive": "fda_vault.verify",
}


class _LazyPackage(types.ModuleType):
    """The ``fda_vault`` module object: public names are imported when first used."""

    def __getattr__(self, name: str) -> Any:
        try:
            module = _EXPORTS[name]
        except KeyError:
            raise AttributeError(f"module 'fda_vault' has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module), name)
        types.ModuleType.__setattr__(self, name, value)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        # Importing the submodule fda_vault.backup binds that *module* to fda_vault.backup,
        # which would hide the function backup(): the public function wins.
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *_EXPORTS})


sys.modules[__name__].__class__ = _LazyPackage
