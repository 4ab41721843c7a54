"""ZIP archives of the original ``backup_project.py``: verified, listed, restored, pruned."""

from __future__ import annotations

import json
import zipfile
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import CARDIAC, GLUCOSE, ORTHO, CliCall, rewrite_archive
from tests.legacy_archives import make_legacy_zip
from tests.tree import snapshot
from tests.zipbytes import flip_member_byte

LEGACY = "legacy (fda-tools ZIP)"


@pytest.fixture
def legacy_zip(projects_dir: Path, tmp_path: Path) -> Path:
    (tmp_path / "old").mkdir()
    return make_legacy_zip(
        projects_dir,
        [CARDIAC, GLUCOSE, ORTHO],
        tmp_path / "old" / "all_projects_backup_20250102_030405.zip",
        when=datetime(2025, 1, 2, 3, 4, 5, 123456),
    )


def test_verify_accepts_an_original_zip_and_says_what_it_lacks(
    cli: CliCall, legacy_zip: Path
) -> None:
    result = cli("verify", legacy_zip, "--json")
    assert result.exit_code == 0, result.stdout
    (report,) = json.loads(result.stdout)["archives"]
    assert (report["ok"], report["format"]) == (True, LEGACY)
    assert report["files_checked"] == len(json.loads(zipfile.ZipFile(legacy_zip).read(
        "metadata.json"))["checksums"])  # fmt: skip
    assert "no sizes, modes or modification times" in report["notes"][0]
    human = cli("verify", legacy_zip)
    assert human.exit_code == 0
    assert human.stdout.startswith(f"OK {legacy_zip}") and LEGACY in human.stdout


def test_list_shows_the_format(cli: CliCall, legacy_zip: Path) -> None:
    listed = cli("list", "--backups-dir", legacy_zip.parent, "--json")
    assert listed.exit_code == 0, listed.stderr
    (summary,) = json.loads(listed.stdout)["backups"]
    assert (summary["format"], summary["files"], summary["error"]) == (LEGACY, 13, None)
    contents = cli("list", legacy_zip, "--json")
    assert contents.exit_code == 0, contents.stderr
    assert json.loads(contents.stdout)["format"] == LEGACY
    table = cli("list", "--backups-dir", legacy_zip.parent)
    assert LEGACY in table.stdout


def test_restore_gives_back_every_file_byte_for_byte(
    cli: CliCall, legacy_zip: Path, projects_dir: Path, tmp_path: Path
) -> None:
    target = tmp_path / "restored"
    result = cli("restore", legacy_zip, "--target-dir", target)
    assert result.exit_code == 0, result.stderr
    for project in (CARDIAC, GLUCOSE, ORTHO):
        original = snapshot(projects_dir / project, with_times=False)
        restored = snapshot(target / project, with_times=False)
        # Same files and bytes; empty folders were never in the format.
        files = {k: v[:2] for k, v in original.items() if v[0] == "file"}
        assert {k: v[:2] for k, v in restored.items() if v[0] == "file"} == files
    assert "legacy (fda-tools ZIP)" in result.stderr  # what the format did not record


def test_a_flipped_byte_is_found(cli: CliCall, legacy_zip: Path) -> None:
    flip_member_byte(legacy_zip, f"projects/{CARDIAC}/pdfs/K201234_summary.pdf")
    result = cli("verify", legacy_zip)
    assert result.exit_code == 3
    assert "K201234_summary.pdf" in result.stderr


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"add": {"projects/K250001_ortho_screw/extra.md": b"x"}}, "not in the manifest"),
        ({"drop": [f"projects/{ORTHO}/device_profile.json"]}, "not in the archive"),
        ({"add": {"projects/../evil.txt": b"x"}}, "'..'"),
        ({"replace": {"checksums.txt": b"0" * 64 + b"  K250001_ortho_screw/x\n"}}, "disagrees"),
        ({"replace": {f"projects/{ORTHO}/device_profile.json": b"tampered"}}, "SHA-256"),
    ],
)
def test_damaged_and_hostile_original_zips_are_refused(
    cli: CliCall, legacy_zip: Path, tmp_path: Path, change: dict[str, object], expected: str
) -> None:
    bad = rewrite_archive(legacy_zip, tmp_path / "bad_backup_20250101_000000.zip", **change)  # type: ignore[arg-type]
    verified = cli("verify", bad)
    assert verified.exit_code == 3
    assert expected in verified.stderr
    restored = cli("restore", bad, "--target-dir", tmp_path / "t")
    assert restored.exit_code == 3
    assert not (tmp_path / "t").exists() or list((tmp_path / "t").iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


def test_our_own_format_without_files_is_damaged_not_legacy(
    cli: CliCall, archive: Path, tmp_path: Path
) -> None:
    """Recognised by shape and created_by, never by the version string alone."""
    with zipfile.ZipFile(archive) as zf:
        metadata = json.loads(zf.read("metadata.json"))
    del metadata["files"]
    bad = rewrite_archive(archive, tmp_path / "x_backup_20250101_000000.zip",
                          replace={"metadata.json": json.dumps(metadata).encode()})  # fmt: skip
    result = cli("verify", bad, "--json")
    assert result.exit_code == 3
    assert json.loads(result.stdout)["archives"][0]["format"] == "fda-vault"


def test_prune_counts_an_intact_original_zip(cli: CliCall, legacy_zip: Path) -> None:
    older = make_legacy_zip(
        legacy_zip.parent.parent / "projects", [ORTHO],
        legacy_zip.parent / f"{ORTHO}_backup_20240101_000000.zip", when=datetime(2024, 1, 1),
    )  # fmt: skip
    newer = make_legacy_zip(
        legacy_zip.parent.parent / "projects", [ORTHO],
        legacy_zip.parent / f"{ORTHO}_backup_20240201_000000.zip", when=datetime(2024, 2, 1),
    )  # fmt: skip
    result = cli("prune", "--keep-last", "1", "--yes", "--backups-dir", legacy_zip.parent,
                 "--json")  # fmt: skip
    assert result.exit_code == 0, result.stdout
    decisions = {d["file"]: d for d in json.loads(result.stdout)["archives"]}
    assert decisions[newer.name]["check"] == "verified" and decisions[newer.name]["kept"]
    assert decisions[newer.name]["format"] == LEGACY
    assert not older.exists() and newer.exists() and legacy_zip.exists()
