"""``fda-vault import``: legacy archives become verified, self-contained fda-vault archives."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import zipfile
from datetime import datetime
from pathlib import Path

from tests.conftest import CARDIAC, GLUCOSE, ORTHO, CliCall, read_manifest_json, rewrite_archive
from tests.legacy_archives import make_legacy_tar, make_legacy_zip, tar_entry
from tests.tree import snapshot


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_import_both_formats_into_verified_archives(
    cli: CliCall, projects_dir: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old"
    old.mkdir()
    zip_source = make_legacy_zip(projects_dir, [CARDIAC, ORTHO],
                                 old / "multi_project_backup_20250102_030405.zip")  # fmt: skip
    tar_source = make_legacy_tar(
        projects_dir, old / "fda_backup_all_projects_20250103_040506_123456.tar.gz",
        when=datetime(2025, 1, 3, 4, 5, 6),
    )  # fmt: skip
    before = {p.name: _sha(p) for p in old.iterdir()}
    out = tmp_path / "backups"
    result = cli("import", zip_source, tar_source, "--output-dir", out, "--json")
    assert result.exit_code == 0, result.stderr
    imported = json.loads(result.stdout)["archives"]
    assert [Path(a["archive"]).name for a in imported] == [
        "multi_project_backup_20250102_030405.zip",
        "all_projects_backup_20250103_040506.zip",
    ]
    assert {p.name: _sha(p) for p in old.iterdir()} == before  # originals untouched
    for item, source in zip(imported, (zip_source, tar_source), strict=True):
        archive = Path(item["archive"])
        assert cli("verify", archive).exit_code == 0
        origin = read_manifest_json(archive)["imported_from"]
        assert origin["file"] == source.name and origin["sha256"] == _sha(source)
        assert origin["format"] == item["source_format"]
        # Self-contained: unzip and sha256sum -c restore it without fda-vault.
        extract = tmp_path / f"unzip-{archive.stem}"
        subprocess.run(["unzip", "-q", str(archive), "-d", str(extract)], check=True)
        checked = subprocess.run(["sha256sum", "-c", "--quiet", "checksums.txt"], cwd=extract,
                                 capture_output=True, text=True, check=False)  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr
    # Recorded, and anchored: each imported archive names the trail's head.
    events = json.loads(cli("log", out, "--json").stdout)["events"]
    imports = [e for e in events if e["command"] == "import"]
    assert [a["action"] for a in imports[0]["archives"]] == ["created", "created"]
    assert all(read_manifest_json(Path(a["archive"]))["audit_head"] for a in imported)
    checked_trail = cli("log", out, "--verify", "--json")
    assert checked_trail.exit_code == 0, checked_trail.stdout
    assert json.loads(checked_trail.stdout)["anchors_checked"] == 2
    target = tmp_path / "restored"
    done = cli("restore", imported[1]["archive"], "--target-dir", target)
    assert done.exit_code == 0, done.stderr
    for project in (CARDIAC, GLUCOSE, ORTHO):
        assert snapshot(target / project, with_times=False) == snapshot(
            projects_dir / project, with_times=False
        )


def test_import_never_replaces_and_refuses_our_own_archives(
    cli: CliCall, projects_dir: Path, tmp_path: Path, archive: Path
) -> None:
    old = tmp_path / "old"
    old.mkdir()
    source = make_legacy_zip(projects_dir, [ORTHO], old / f"{ORTHO}_backup_20250101_000000.zip")
    out = tmp_path / "out"
    out.mkdir()
    taken = out / source.name
    shutil.copy(source, taken)
    result = cli("import", source, archive, "--output-dir", out, "--json")
    assert result.exit_code == 2  # our own archive: nothing to import
    first, second = json.loads(result.stdout)["archives"]
    assert Path(first["archive"]).name == f"{ORTHO}_backup_20250101_000000_1.zip"
    assert _sha(taken) == _sha(source)
    assert "already an fda-vault archive" in second["error"]


def test_damaged_or_hostile_legacy_archives_are_not_imported(
    cli: CliCall, projects_dir: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old"
    old.mkdir()
    hostile = make_legacy_tar(
        projects_dir, old / "fda_backup_all_projects_20250101_000000_000000.tar.gz",
        extra=[tar_entry(f"projects/{ORTHO}/link", b"2", linkname="/etc/shadow")],
    )  # fmt: skip
    damaged = make_legacy_zip(projects_dir, [ORTHO], old / f"{ORTHO}_backup_20250101_000000.zip")
    with zipfile.ZipFile(damaged) as zf:
        meta = json.loads(zf.read("metadata.json"))
    meta["checksums"][f"{ORTHO}/device_profile.json"] = "0" * 64
    rebuilt = tmp_path / "rebuilt.zip"
    with zipfile.ZipFile(damaged) as src, zipfile.ZipFile(rebuilt, "w") as dst:
        for info in src.infolist():
            data = json.dumps(meta).encode() if info.filename == "metadata.json" else src.read(info)
            dst.writestr(info, data)
    shutil.move(rebuilt, damaged)
    out = tmp_path / "out"
    result = cli("import", hostile, damaged, "--output-dir", out)
    assert result.exit_code == 3
    assert "symlink entry" in result.stderr and "disagrees with metadata.json" in result.stderr
    assert not out.exists() or list(out.glob("*.zip*")) == []


def test_a_tampered_member_is_not_imported(
    cli: CliCall, projects_dir: Path, tmp_path: Path
) -> None:
    """The data is checked as it is copied: a member rewritten with a valid CRC but other
    bytes than its SHA-256 stops the import, and no archive appears."""
    old = tmp_path / "old"
    old.mkdir()
    source = make_legacy_zip(projects_dir, [ORTHO], old / f"{ORTHO}_backup_20250101_000000.zip")
    tampered = rewrite_archive(
        source, tmp_path / f"{ORTHO}_backup_20250102_000000.zip",
        replace={f"projects/{ORTHO}/device_profile.json": b'{"device": "other"}'},
    )  # fmt: skip
    out = tmp_path / "out"
    result = cli("import", tampered, "--output-dir", out)
    assert result.exit_code == 3
    assert "device_profile.json" in result.stderr and "SHA-256" in result.stderr
    assert list(out.glob("*.zip*")) == []
