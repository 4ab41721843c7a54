"""``fda-vault verify`` end to end: 0 intact, 3 damaged (every problem shown), 2 missing."""

from __future__ import annotations

import errno
import json
import os
import zipfile
from pathlib import Path

import pytest

from fda_vault._verify import VerifyResult
from tests.conftest import CARDIAC, ORTHO, CliCall, rewrite_archive
from tests.zipbytes import flip_member_byte

PDF = f"projects/{CARDIAC}/pdfs/K201234_summary.pdf"
PROFILE = f"projects/{ORTHO}/device_profile.json"


def _damaged(archive: Path, tmp_path: Path) -> Path:
    """Three problems at once: a member removed, one added, one with other content."""
    with zipfile.ZipFile(archive) as zf:
        profile = zf.read(PROFILE)
    return rewrite_archive(
        archive,
        tmp_path / "damaged_backup_20260101_000000.zip",
        drop=[PDF],
        add={f"projects/{ORTHO}/intruder.txt": b"x"},
        replace={PROFILE: profile.upper()},
    )


def test_intact_archive_exits_0(cli: CliCall, archive: Path) -> None:
    result = cli("verify", archive)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK ")
    assert str(archive) in result.stdout
    assert result.stderr == ""


def test_json_matches_the_model(cli: CliCall, archive: Path) -> None:
    result = cli("verify", archive, "--json")
    assert result.exit_code == 0
    parsed = VerifyResult.model_validate_json(result.stdout)
    assert parsed.ok
    [report] = parsed.archives
    assert report.archive == str(archive)
    with zipfile.ZipFile(archive) as zf:
        manifest = json.loads(zf.read("metadata.json"))
    assert report.files_checked == len(manifest["files"])
    assert report.bytes_checked == sum(f["size"] for f in manifest["files"])


def test_damaged_archive_exits_3_listing_every_problem(
    cli: CliCall, archive: Path, tmp_path: Path
) -> None:
    damaged = _damaged(archive, tmp_path)
    result = cli("verify", damaged)
    assert result.exit_code == 3
    assert "Traceback" not in result.stderr
    assert "DAMAGED" in result.stdout
    for path in (PDF, PROFILE, f"projects/{ORTHO}/intruder.txt"):
        assert path in result.stderr, path
    assert "3 problem(s)" in result.stdout


def test_damaged_archive_json_lists_every_problem(
    cli: CliCall, archive: Path, tmp_path: Path
) -> None:
    result = cli("verify", _damaged(archive, tmp_path), "--json")
    assert result.exit_code == 3
    parsed = VerifyResult.model_validate_json(result.stdout)
    assert not parsed.ok
    problems = {(p.path, p.kind) for p in parsed.archives[0].problems}
    assert problems == {
        (PDF, "missing"),
        (PROFILE, "sha256"),
        (f"projects/{ORTHO}/intruder.txt", "unexpected"),
    }


def test_several_archives_one_damaged_exits_3(cli: CliCall, archive: Path, tmp_path: Path) -> None:
    damaged = _damaged(archive, tmp_path)
    result = cli("verify", archive, damaged, "--json")
    assert result.exit_code == 3
    parsed = VerifyResult.model_validate_json(result.stdout)
    assert [(r.archive, r.ok) for r in parsed.archives] == [
        (str(archive), True),
        (str(damaged), False),
    ]
    both_good = cli("verify", archive, archive)
    assert both_good.exit_code == 0
    assert both_good.stdout.count("OK ") == 2


@pytest.mark.parametrize(
    "content",
    [b"", b"just some text, not a zip\n", b"PK\x03\x04truncated"],
    ids=["empty", "text", "stub"],
)
def test_not_an_archive_exits_3(cli: CliCall, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "suspect.zip"
    path.write_bytes(content)
    result = cli("verify", path)
    assert result.exit_code == 3
    assert "Traceback" not in result.stderr
    assert str(path) in result.stderr + result.stdout


def test_foreign_zip_exits_3(cli: CliCall, tmp_path: Path) -> None:
    path = tmp_path / "photos.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("holiday.jpg", b"\xff\xd8\xff")
    result = cli("verify", path, "--json")
    assert result.exit_code == 3
    assert "not a fda-vault archive" in result.stdout


def test_missing_archive_exits_2(cli: CliCall, tmp_path: Path) -> None:
    missing = tmp_path / "gone_backup_20260101_000000.zip"
    result = cli("verify", missing)
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ")
    assert str(missing) in line


def test_missing_archive_json_reports_each(cli: CliCall, archive: Path, tmp_path: Path) -> None:
    result = cli("verify", archive, tmp_path / "gone.zip", "--json")
    assert result.exit_code == 2
    reports = json.loads(result.stdout)["archives"]
    assert [(r["status"], r["ok"]) for r in reports] == [("ok", True), ("missing", False)]
    assert reports[1]["problems"][0]["detail"] == "no such archive"


def test_one_missing_path_does_not_hide_the_others(
    cli: CliCall, archive: Path, tmp_path: Path
) -> None:
    """Field trial: ``verify damaged.zip nope.zip good.zip`` printed only the missing one."""
    damaged = flip_member_byte(archive, f"projects/{CARDIAC}/pdfs/K201234_summary.pdf",
                               tmp_path / "damaged.zip")  # fmt: skip
    missing = tmp_path / "nope.zip"
    result = cli("verify", damaged, missing, archive)
    assert result.exit_code == 3  # damaged wins over missing
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"DAMAGED {damaged}")
    assert lines[1] == f"MISSING {missing}"
    assert lines[2].startswith(f"OK {archive}")
    assert f"error: {missing} — no such archive" in result.stderr
    assert "CRC-32" in result.stderr or "SHA-256" in result.stderr


def test_folder_instead_of_archive_exits_2(cli: CliCall, tmp_path: Path) -> None:
    result = cli("verify", tmp_path)
    assert result.exit_code == 2
    assert "not a file" in result.stderr


def test_no_argument_exits_2(cli: CliCall) -> None:
    result = cli("verify")
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr


def test_quiet_shows_problems_but_no_summary(cli: CliCall, archive: Path, tmp_path: Path) -> None:
    ok = cli("verify", "-q", archive)
    assert ok.exit_code == 0
    assert ok.stdout == ""
    bad = cli("verify", "--quiet", _damaged(archive, tmp_path))
    assert bad.exit_code == 3
    assert bad.stdout == ""
    assert PDF in bad.stderr


def _input_output_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every read of archive member data fails as a dying disk would (EIO)."""

    def failing_pread(fd: int, n: int, offset: int) -> bytes:
        raise OSError(errno.EIO, "Input/output error")

    # Members are read with os.pread: a dying disk fails exactly there.
    monkeypatch.setattr(os, "pread", failing_pread)


def test_io_error_while_reading_exits_1(
    cli: CliCall, archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _input_output_error(monkeypatch)
    result = cli("verify", archive)
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ")
    assert "Input/output error" in line
