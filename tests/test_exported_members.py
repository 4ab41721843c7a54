"""The public API is exactly ``fda_vault.__all__``: additions and removals are deliberate."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import re
from pathlib import Path

import pytest

import fda_vault

EXPECTED = {
    "ArchiveContents",
    "BackupList",
    "BackupManifest",
    "BackupResult",
    "BackupSummary",
    "CopiedArchive",
    "CopyResult",
    "DecryptError",
    "Encryption",
    "ExitCode",
    "FdaVaultError",
    "FileEntry",
    "GeneratedKey",
    "IntegrityError",
    "InterruptedByUser",
    "Keys",
    "LockedError",
    "OperationError",
    "GuardResult",
    "Problem",
    "ProjectPlan",
    "PruneDecision",
    "PrunePlan",
    "PruneResult",
    "RefusedError",
    "RestorePlan",
    "RestoreResult",
    "RetentionPolicy",
    "Snapshot",
    "SkippedEntry",
    "UsageError",
    "VerifyReport",
    "VerifyResult",
    "__version__",
    "backup",
    "copy_archives",
    "describe_archive",
    "generate_key",
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
    "AuditEvent",
    "TrailReport",
    "check_trail",
    "read_log",
    "DrillResult",
    "drill",
    "JobConfig",
    "load_config",
    "RunResult",
    "run_job",
    "JobStatus",
    "job_status",
}


def test_all_is_pinned() -> None:
    """Additions and removals are deliberate: this list changes with them."""
    assert set(fda_vault.__all__) == EXPECTED


def test_every_public_name_resolves_lazily_to_what_its_module_defines() -> None:
    """Names are imported on first use; each must exist, and importing the private
    modules behind them (fda_vault._backup) never hides a public function."""
    importlib.import_module("fda_vault._backup")
    importlib.import_module("fda_vault._restore")
    for name in fda_vault.__all__:
        value = getattr(fda_vault, name)
        assert not inspect.ismodule(value), name
    assert callable(fda_vault.backup) and callable(fda_vault.restore)
    assert set(fda_vault.__all__) - {"__version__"} <= set(dir(fda_vault))


def test_the_modules_behind_the_api_are_private() -> None:
    """Only the command line, the console script and the schema printer are public."""
    package = Path(fda_vault.__file__).parent
    public = {p.stem for p in package.glob("*.py") if not p.stem.startswith("_")}
    assert public == {"cli", "entry", "schema"}


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError):
        _ = fda_vault.no_such_name  # type: ignore[attr-defined]


def test_all_has_no_duplicates_and_is_sorted() -> None:
    assert len(fda_vault.__all__) == len(set(fda_vault.__all__))
    assert list(fda_vault.__all__) == sorted(fda_vault.__all__)


def test_every_exported_name_exists_and_is_public_api() -> None:
    for name in fda_vault.__all__:
        member = getattr(fda_vault, name)
        if name == "__version__":
            continue
        assert not name.startswith("_")
        # Exported from private-by-convention modules but presented as fda_vault.<name>.
        assert getattr(member, "__module__", "").startswith("fda_vault."), name
        assert member.__doc__, f"{name} has no docstring"


def test_version() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+([a-z0-9.+-]*)?", fda_vault.__version__)
    assert importlib.metadata.version("fda-vault") == fda_vault.__version__


def test_exit_codes_match_the_contract() -> None:
    codes = {code.name: int(code) for code in fda_vault.ExitCode}
    assert codes == {
        "OK": 0,
        "FAILURE": 1,
        "USAGE": 2,
        "INTEGRITY": 3,
        "REFUSED": 4,
        "CANNOT_DECRYPT": 5,
        "DIFFERENCES": 6,
        "INTERRUPTED": 130,
    }
    assert fda_vault.UsageError("x").exit_code == 2
    assert fda_vault.OperationError("x").exit_code == 1
    assert fda_vault.LockedError("x").exit_code == 1
    assert fda_vault.IntegrityError("x").exit_code == 3
    assert fda_vault.RefusedError("x").exit_code == 4
    assert fda_vault.DecryptError("x").exit_code == 5
    assert fda_vault.InterruptedByUser("x").exit_code == 130


def test_error_hierarchy() -> None:
    for cls in (
        fda_vault.UsageError,
        fda_vault.OperationError,
        fda_vault.IntegrityError,
        fda_vault.RefusedError,
        fda_vault.InterruptedByUser,
    ):
        assert issubclass(cls, fda_vault.FdaVaultError)
    assert issubclass(fda_vault.LockedError, fda_vault.OperationError)


def test_error_message_names_what_and_why() -> None:
    error = fda_vault.OperationError("/data/a.pdf", "permission denied")
    assert error.message == "/data/a.pdf — permission denied"
    assert str(error) == error.message
    assert fda_vault.UsageError("just what").message == "just what"
