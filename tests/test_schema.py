"""docs/manifest.schema.json is generated from BackupManifest and must not go stale."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import fda_vault
from fda_vault._manifest import BackupManifest
from fda_vault.schema import main, manifest_json_schema, render_schema

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "docs" / "manifest.schema.json"

# Every field of metadata.json that DESIGN.md lists ("Archive format (v1)").
DESIGN_FIELDS = {
    "backup_version",
    "backup_timestamp",
    "projects",
    "total_projects",
    "total_files",
    "total_bytes",
    "checksums",
    "files",
    "empty_dirs",
    "skipped",
    "created_by",
    "schema",
}
# The original scripts' schema: these must stay required for old readers.
ORIGINAL_REQUIRED = {"backup_timestamp", "projects", "total_projects", "total_files", "checksums"}
FILE_ENTRY_FIELDS = {"path", "size", "sha256", "mtime", "mode"}


def test_committed_schema_is_current() -> None:
    committed = SCHEMA_PATH.read_text(encoding="utf-8")
    assert committed == render_schema(), (
        "docs/manifest.schema.json is stale: run `python -m fda_vault.schema`"
    )


def test_committed_schema_is_valid_json_with_sorted_keys() -> None:
    committed = SCHEMA_PATH.read_text(encoding="utf-8")
    assert committed.endswith("}\n")
    assert json.loads(committed) == manifest_json_schema()


def test_schema_lists_every_design_field() -> None:
    properties = manifest_json_schema()["properties"]
    missing = DESIGN_FIELDS - set(properties)
    assert not missing, f"DESIGN.md fields absent from the schema: {sorted(missing)}"
    assert "schema_" not in properties  # written by alias, as in metadata.json


def test_schema_keeps_original_fields_required() -> None:
    assert not ORIGINAL_REQUIRED - set(manifest_json_schema()["required"])


def test_schema_describes_file_entries() -> None:
    schema = manifest_json_schema()
    entry = schema["$defs"]["FileEntry"]
    # Fields added after DESIGN.md's table are allowed, but must be optional (1.x readers).
    assert not FILE_ENTRY_FIELDS - set(entry["properties"])
    assert set(entry["required"]) == FILE_ENTRY_FIELDS
    assert entry["properties"]["sha256"]["pattern"] == "^[0-9a-f]{64}$"


def test_schema_matches_a_real_manifest() -> None:
    manifest = BackupManifest(
        backup_timestamp="2026-01-05T02:00:00+00:00",
        projects=["K241234_cardiac_monitor"],
        total_projects=1,
        total_files=0,
        checksums={},
    )
    written = json.loads(manifest.to_json_bytes())
    assert set(written) <= set(manifest_json_schema()["properties"])


def test_main_writes_the_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "manifest.schema.json"
    assert main([str(target)]) == 0
    assert target.read_text(encoding="utf-8") == render_schema()
    assert str(target) in capsys.readouterr().err


def test_module_prints_the_schema_and_writes_nothing(tmp_path: Path) -> None:
    """Field trial: in a normal install it created site-packages/docs/manifest.schema.json."""
    tmp_path = tmp_path / "cwd"
    tmp_path.mkdir()
    package_parent = Path(fda_vault.__file__).resolve().parent.parent
    before = sorted(p.name for p in package_parent.iterdir())
    schema_mtime = SCHEMA_PATH.stat().st_mtime_ns
    done = subprocess.run(
        [sys.executable, "-m", "fda_vault.schema"],
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == manifest_json_schema()
    assert sorted(p.name for p in package_parent.iterdir()) == before
    assert SCHEMA_PATH.stat().st_mtime_ns == schema_mtime
    assert list(tmp_path.iterdir()) == []


def test_the_docs_generators_are_not_in_the_package() -> None:
    package = Path(fda_vault.__file__).resolve().parent
    assert not (package / "clidoc.py").exists()


def test_module_runs_as_script(tmp_path: Path) -> None:
    target = tmp_path / "manifest.schema.json"
    done = subprocess.run(
        [sys.executable, "-m", "fda_vault.schema", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert target.read_text(encoding="utf-8") == SCHEMA_PATH.read_text(encoding="utf-8")
