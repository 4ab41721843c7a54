"""tar.gz archives of the original library ``project_backup.py``: verify, list, restore,
prune; damaged and hostile ones refused with nothing written."""

from __future__ import annotations

import json
import os
import tarfile
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import CARDIAC, GLUCOSE, ORTHO, CliCall
from tests.legacy_archives import make_legacy_tar, tar_entry
from tests.tree import snapshot

LEGACY = "legacy (fda-tools tar.gz)"
ALL_NAME = "fda_backup_all_projects_20250102_030405_123456.tar.gz"


@pytest.fixture
def old_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "claude-backups"
    folder.mkdir()
    return folder


@pytest.fixture
def all_tar(projects_dir: Path, old_dir: Path) -> Path:
    return make_legacy_tar(projects_dir, old_dir / ALL_NAME, when=datetime(2025, 1, 2, 3, 4, 5))


def _file_count(tar: Path) -> int:
    """The regular files in the tar (manifest.json aside), counted by tarfile itself."""
    with tarfile.open(tar) as archive:
        return sum(1 for m in archive.getmembers() if m.isreg() and m.name != "manifest.json")


def _files_only(tree: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    return {k: v for k, v in tree.items() if v[0] == "file"}


def test_verify_accepts_it_and_says_there_is_no_per_file_hash(cli: CliCall, all_tar: Path) -> None:
    result = cli("verify", all_tar, "--json")
    assert result.exit_code == 0, result.stdout
    (report,) = json.loads(result.stdout)["archives"]
    assert (report["ok"], report["format"], report["archive"]) == (True, LEGACY, str(all_tar))
    assert report["files_checked"] == _file_count(all_tar)
    assert "no per-file hash" in report["notes"][0]
    human = cli("verify", all_tar)
    assert human.exit_code == 0
    assert LEGACY in human.stdout and "no per-file hash" in human.stderr


@pytest.mark.parametrize("manifest_first", [False, True])
def test_restore_gives_back_every_file_with_its_mode_and_time(
    cli: CliCall, projects_dir: Path, old_dir: Path, tmp_path: Path, manifest_first: bool
) -> None:
    os.chmod(projects_dir / ORTHO / "device_profile.json", 0o600)
    tar = make_legacy_tar(projects_dir, old_dir / ALL_NAME, manifest_first=manifest_first)
    target = tmp_path / "restored"
    result = cli("restore", tar, "--target-dir", target, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["format"], data["archive"]) == (LEGACY, str(tar))
    for project in (CARDIAC, GLUCOSE, ORTHO):
        original = _files_only(snapshot(projects_dir / project, with_times=False))
        assert _files_only(snapshot(target / project, with_times=False)) == original
    restored = target / ORTHO / "device_profile.json"
    assert oct(restored.stat().st_mode & 0o777) == "0o600"
    # tar keeps whole seconds
    assert int(restored.stat().st_mtime) == int((projects_dir / ORTHO / "device_profile.json")
                                                .stat().st_mtime)  # fmt: skip


def test_a_one_project_tar_restores_that_project(
    cli: CliCall, projects_dir: Path, old_dir: Path, tmp_path: Path
) -> None:
    tar = make_legacy_tar(
        projects_dir, old_dir / f"fda_backup_{ORTHO}_20250101_000000_000001.tar.gz", project=ORTHO
    )
    target = tmp_path / "t"
    result = cli("restore", tar, "--target-dir", target)
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in target.iterdir()) == [ORTHO]
    listed = cli("list", tar, "--json")
    assert listed.exit_code == 0, listed.stderr
    contents = json.loads(listed.stdout)
    assert (contents["format"], [p["name"] for p in contents["projects"]]) == (LEGACY, [ORTHO])


def test_list_folder_shows_tar_archives(cli: CliCall, all_tar: Path) -> None:
    result = cli("list", "--backups-dir", all_tar.parent, "--json")
    assert result.exit_code == 0, result.stderr
    (summary,) = json.loads(result.stdout)["backups"]
    assert (summary["file"], summary["format"]) == (ALL_NAME, LEGACY)
    assert summary["files"] == _file_count(all_tar)
    assert summary["label"] == "all_projects"


def _hostile(projects_dir: Path, old_dir: Path, *extra: object) -> Path:
    return make_legacy_tar(projects_dir, old_dir / ALL_NAME, extra=extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (tar_entry(f"projects/{ORTHO}/link", tarfile.SYMTYPE, linkname="/etc/passwd"), "symlink"),
        (tar_entry(f"projects/{ORTHO}/hard", tarfile.LNKTYPE, linkname="/etc/passwd"), "hard link"),
        (tar_entry(f"projects/{ORTHO}/dev", tarfile.CHRTYPE), "special entry"),
        (tar_entry(f"projects/{ORTHO}/fifo", tarfile.FIFOTYPE), "special entry"),
        ((tar_entry("projects/../../evil.txt", size=4), b"evil"), "'..'"),
        ((tar_entry("/etc/evil.txt", size=4), b"evil"), "member outside"),
        ((tar_entry(f"projects/{ORTHO}/a\\b.txt", size=4), b"evil"), "backslash"),
        ((tar_entry(f"projects/{ORTHO}/device_profile.json", size=4), b"twin"), "same name"),
        ((tar_entry(f"projects/{ORTHO}/unlisted.md", size=4), b"sneak"), "not in manifest.json"),
    ],
)
def test_hostile_tar_is_refused_and_nothing_is_written(
    cli: CliCall, projects_dir: Path, old_dir: Path, tmp_path: Path, entry: object, expected: str
) -> None:
    tar = _hostile(projects_dir, old_dir, entry)
    verified = cli("verify", tar)
    assert verified.exit_code == 3
    assert expected in verified.stderr, verified.stderr
    target = tmp_path / "t"
    restored = cli("restore", tar, "--target-dir", target)
    assert restored.exit_code == 3, restored.stderr
    assert len(restored.stderr.strip().splitlines()) == 1 and "Traceback" not in restored.stderr
    assert not target.exists() or list(target.iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


def test_a_truncated_or_flipped_tar_is_damaged(cli: CliCall, all_tar: Path, tmp_path: Path) -> None:
    data = all_tar.read_bytes()
    cut = tmp_path / "cut" / ALL_NAME
    cut.parent.mkdir()
    cut.write_bytes(data[: len(data) // 2])
    flipped = tmp_path / "flip" / ALL_NAME
    flipped.parent.mkdir()
    middle = len(data) // 2
    flipped.write_bytes(data[:middle] + bytes([data[middle] ^ 0x40]) + data[middle + 1 :])
    for bad in (cut, flipped):
        result = cli("verify", bad)
        assert result.exit_code == 3, (bad, result.stdout)
        restored = cli("restore", bad, "--target-dir", tmp_path / "t")
        assert restored.exit_code == 3
    assert not (tmp_path / "t").exists() or list((tmp_path / "t").iterdir()) == []


def test_a_tar_whose_manifest_lists_a_missing_file_is_damaged(
    cli: CliCall, projects_dir: Path, old_dir: Path, tmp_path: Path
) -> None:
    tar = make_legacy_tar(projects_dir, tmp_path / ALL_NAME)
    # Rebuild it with one data member dropped but the manifest kept.
    with tarfile.open(tar) as source, tarfile.open(old_dir / ALL_NAME, "w:gz") as out:
        for member in source.getmembers():
            if member.name.endswith("device_profile.json") and ORTHO in member.name:
                continue
            out.addfile(member, source.extractfile(member) if member.isreg() else None)
    result = cli("verify", old_dir / ALL_NAME)
    assert result.exit_code == 3
    assert "is in manifest.json but not in the archive" in result.stderr


def test_prune_counts_intact_tar_archives(cli: CliCall, projects_dir: Path, old_dir: Path) -> None:
    names = [f"fda_backup_{ORTHO}_2024010{day}_000000_000000.tar.gz" for day in (1, 2, 3)]
    for day, name in zip((1, 2, 3), names, strict=True):
        make_legacy_tar(projects_dir, old_dir / name, project=ORTHO,
                        when=datetime(2024, 1, day))  # fmt: skip
    result = cli("prune", "--keep-last", "1", "--yes", "--backups-dir", old_dir, "--json")
    assert result.exit_code == 0, result.stdout
    decisions = {d["file"]: d for d in json.loads(result.stdout)["archives"]}
    assert decisions[names[2]]["kept"] and decisions[names[2]]["format"] == LEGACY
    assert sorted(p.name for p in old_dir.glob("*.tar.gz")) == [names[2]]


def test_a_project_named_like_the_backups_folder_is_refused_clearly(
    cli: CliCall, projects_dir: Path, old_dir: Path
) -> None:
    (projects_dir / "backups").mkdir()
    (projects_dir / "backups" / "old.zip").write_bytes(b"PK")
    tar = make_legacy_tar(
        projects_dir, old_dir / "fda_backup_backups_20250101_000000_000000.tar.gz",
        project="backups",
    )  # fmt: skip
    result = cli("verify", tar)
    assert result.exit_code == 3
    assert "reserves" in result.stderr and "Traceback" not in result.stderr


def test_the_conversion_is_private_and_removed(all_tar: Path) -> None:
    """SECURITY.md: the temporary ZIP is mode 0600 in a folder of its own, gone after use."""
    from fda_vault._legacytar import converted

    with converted(all_tar) as (zip_path, _manifest, _digest, _scan):
        assert oct(zip_path.stat().st_mode & 0o777) == "0o600"
        assert oct(zip_path.parent.stat().st_mode & 0o777) == "0o700"
        folder = zip_path.parent
    assert not folder.exists()
