"""``verify``: every kind of damage is found, and all of it is reported at once."""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest

from fda_vault import _parallel as parallel
from fda_vault._backup import backup
from fda_vault._checks import Problem
from fda_vault._errors import ExitCode
from fda_vault._manifest import parse_manifest
from fda_vault._verify import VerifyReport, verify, verify_archive, verify_written
from tests.conftest import CARDIAC, GLUCOSE, ORTHO, cardiac_files, rewrite_archive
from tests.zipbytes import flip_member_byte

PDF = f"projects/{CARDIAC}/pdfs/K201234_summary.pdf"
CSV = f"projects/{CARDIAC}/openfda/510k_records.csv"
GUIDANCE = f"projects/{CARDIAC}/pdf_text/guidance_extract.txt"
PROFILE = f"projects/{ORTHO}/device_profile.json"


@pytest.fixture
def stored(projects_dir: Path, backups_dir: Path) -> Path:
    """An --all archive with every member stored, so data bytes sit at known offsets."""
    result = backup(all_projects=True, projects_dir=projects_dir, output_dir=backups_dir, level=0)
    return Path(result.archive)


@pytest.fixture
def deflated(projects_dir: Path, backups_dir: Path) -> Path:
    """An --all archive at the default level (text members deflated)."""
    result = backup(all_projects=True, projects_dir=projects_dir, output_dir=backups_dir)
    return Path(result.archive)


def _data_offset(path: Path, member: str) -> tuple[int, int]:
    """Where ``member``'s data starts in the file, and its compressed size."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    with open(path, "rb") as fp:
        fp.seek(info.header_offset + 26)
        name_len = int.from_bytes(fp.read(2), "little")
        extra_len = int.from_bytes(fp.read(2), "little")
    return info.header_offset + 30 + name_len + extra_len, info.compress_size


def _flip_byte(path: Path, member: str, at: int = 0) -> None:
    offset, size = _data_offset(path, member)
    assert 0 <= at < size
    with open(path, "r+b") as fp:
        fp.seek(offset + at)
        byte = fp.read(1)[0]
        fp.seek(offset + at)
        fp.write(bytes([byte ^ 0x01]))


def _edit_manifest(source: Path, target: Path, edit: Any) -> Path:
    with zipfile.ZipFile(source) as zf:
        data = json.loads(zf.read("metadata.json"))
    edit(data)
    raw = json.dumps(data, indent=2).encode("utf-8")
    return rewrite_archive(source, target, replace={"metadata.json": raw})


def _kinds(report: VerifyReport) -> set[tuple[str, str]]:
    return {(p.path, p.kind) for p in report.problems}


def test_an_intact_archive_passes(stored: Path, projects_dir: Path) -> None:
    report = verify_archive(stored)
    assert report.ok
    assert report.problems == []
    assert report.projects == sorted([CARDIAC, GLUCOSE, ORTHO])
    files = [p for p in projects_dir.rglob("*") if p.is_file() and ".cache" not in p.parts]
    files = [p for p in files if p.parent != projects_dir]  # README.txt is not in a project
    assert report.files_checked == len(files)
    assert report.bytes_checked == sum(p.stat().st_size for p in files)


def test_a_zipfile_rewrite_of_an_intact_archive_still_passes(stored: Path, tmp_path: Path) -> None:
    """The control for every tampering test below: rewriting alone changes nothing."""
    copy = rewrite_archive(stored, tmp_path / "copy.zip")
    assert verify_archive(copy).ok


@pytest.mark.parametrize("at", [0, 100, -1], ids=["first", "middle", "last"])
def test_a_flipped_byte_in_stored_data_is_found(stored: Path, at: int) -> None:
    _, size = _data_offset(stored, PDF)
    _flip_byte(stored, PDF, at % size)
    report = verify_archive(stored)
    assert not report.ok
    assert [p.path for p in report.problems] == [PDF]
    assert report.problems[0].kind in {"corrupt", "sha256"}


def test_a_flipped_byte_in_deflated_data_is_found(deflated: Path) -> None:
    with zipfile.ZipFile(deflated) as zf:
        assert zf.getinfo(GUIDANCE).compress_type == zipfile.ZIP_DEFLATED
    _flip_byte(deflated, GUIDANCE, 5)
    report = verify_archive(deflated)
    assert not report.ok
    assert [p.path for p in report.problems] == [GUIDANCE]


def test_changed_content_with_a_matching_crc_fails_sha256(stored: Path, tmp_path: Path) -> None:
    """A rewrite gives the new bytes a correct CRC and size: only SHA-256 can tell."""
    with zipfile.ZipFile(stored) as zf:
        original = zf.read(PROFILE)
    forged = original.replace(b"bone", b"BONE")
    assert forged != original and len(forged) == len(original)
    damaged = rewrite_archive(stored, tmp_path / "forged.zip", replace={PROFILE: forged})
    report = verify_archive(damaged)
    assert not report.ok
    assert _kinds(report) == {(PROFILE, "sha256")}


def test_a_removed_member_is_found(stored: Path, tmp_path: Path) -> None:
    damaged = rewrite_archive(stored, tmp_path / "removed.zip", drop=[PDF])
    report = verify_archive(damaged)
    assert not report.ok
    assert _kinds(report) == {(PDF, "missing")}


def test_a_removed_empty_folder_is_found(stored: Path, tmp_path: Path) -> None:
    folder = f"projects/{CARDIAC}/drafts/empty_section/"
    damaged = rewrite_archive(stored, tmp_path / "nofolder.zip", drop=[folder])
    assert _kinds(verify_archive(damaged)) == {(folder, "missing")}


@pytest.mark.parametrize(
    ("member", "kind"),
    [
        (f"projects/{ORTHO}/smuggled.exe", "unexpected"),
        (f"projects/{CARDIAC}/pdfs/extra.pdf", "unexpected"),
        ("projects/K999999_other/a.txt", "unexpected"),
        ("README.txt", "unsafe"),  # outside projects/<project>/
    ],
)
def test_an_added_member_is_found(stored: Path, tmp_path: Path, member: str, kind: str) -> None:
    damaged = rewrite_archive(stored, tmp_path / "added.zip", add={member: b"not in manifest"})
    report = verify_archive(damaged)
    assert not report.ok
    assert _kinds(report) == {(member, kind)}


def test_an_added_folder_is_found(stored: Path, tmp_path: Path) -> None:
    folder = f"projects/{ORTHO}/new_folder/"
    damaged = rewrite_archive(stored, tmp_path / "added.zip", add={folder: b""})
    assert _kinds(verify_archive(damaged)) == {(folder, "unexpected")}


def test_an_edited_sha256_in_the_manifest_is_found(stored: Path, tmp_path: Path) -> None:
    key = f"{CARDIAC}/device_profile.json"
    other = hashlib.sha256(b"something else").hexdigest()

    def edit(data: dict[str, Any]) -> None:
        # Edited consistently in both places, so only the data check can catch it.
        data["checksums"][key] = other
        next(f for f in data["files"] if f["path"] == key)["sha256"] = other

    report = verify_archive(_edit_manifest(stored, tmp_path / "sha.zip", edit))
    assert not report.ok
    assert (f"projects/{key}", "sha256") in _kinds(report)


def test_an_edited_size_in_the_manifest_is_found(stored: Path, tmp_path: Path) -> None:
    key = f"{CARDIAC}/device_profile.json"

    def edit(data: dict[str, Any]) -> None:
        entry = next(f for f in data["files"] if f["path"] == key)
        entry["size"] += 1
        data["total_bytes"] += 1

    report = verify_archive(_edit_manifest(stored, tmp_path / "size.zip", edit))
    assert not report.ok
    assert (f"projects/{key}", "corrupt") in _kinds(report)


def test_a_file_dropped_from_the_manifest_is_found(stored: Path, tmp_path: Path) -> None:
    key = f"{ORTHO}/device_profile.json"

    def edit(data: dict[str, Any]) -> None:
        data["files"] = [f for f in data["files"] if f["path"] != key]
        del data["checksums"][key]

    report = verify_archive(_edit_manifest(stored, tmp_path / "dropped.zip", edit))
    kinds = _kinds(report)
    assert (f"projects/{key}", "unexpected") in kinds  # a member the manifest does not list
    assert ("metadata.json", "manifest") in kinds  # totals no longer add up
    assert ("checksums.txt", "checksums") in kinds


@pytest.mark.parametrize(
    ("field", "value"),
    [("total_files", 999), ("total_bytes", 1), ("total_projects", 7)],
)
def test_edited_totals_are_found(stored: Path, tmp_path: Path, field: str, value: int) -> None:
    def edit(data: dict[str, Any]) -> None:
        data[field] = value

    report = verify_archive(_edit_manifest(stored, tmp_path / "totals.zip", edit))
    assert not report.ok
    assert ("metadata.json", "manifest") in _kinds(report)


def test_checksums_map_disagreeing_with_files_is_found(stored: Path, tmp_path: Path) -> None:
    key = f"{GLUCOSE}/device_profile.json"

    def edit(data: dict[str, Any]) -> None:
        data["checksums"][key] = "0" * 64

    report = verify_archive(_edit_manifest(stored, tmp_path / "map.zip", edit))
    assert (key, "manifest") in _kinds(report)
    assert ("checksums.txt", "checksums") in _kinds(report)


def test_checksums_txt_disagreeing_with_the_manifest_is_found(stored: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(stored) as zf:
        lines = zf.read("checksums.txt").decode().splitlines(keepends=True)
    edited = "".join(["0" * 64 + lines[0][64:], *lines[1:]]).encode()
    report = verify_archive(
        rewrite_archive(stored, tmp_path / "sums.zip", replace={"checksums.txt": edited})
    )
    assert not report.ok
    assert _kinds(report) == {("checksums.txt", "checksums")}


def test_a_checksums_txt_missing_a_line_is_found(stored: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(stored) as zf:
        lines = zf.read("checksums.txt").decode().splitlines(keepends=True)
    edited = "".join(lines[1:]).encode()
    report = verify_archive(
        rewrite_archive(stored, tmp_path / "sums.zip", replace={"checksums.txt": edited})
    )
    assert _kinds(report) == {("checksums.txt", "checksums")}


def test_a_malformed_checksums_line_is_found(stored: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(stored) as zf:
        text = zf.read("checksums.txt").decode()
    report = verify_archive(
        rewrite_archive(
            stored, tmp_path / "sums.zip", replace={"checksums.txt": (text + "garbage\n").encode()}
        )
    )
    assert any("malformed" in p.detail for p in report.problems)


def test_a_missing_checksums_txt_is_found(stored: Path, tmp_path: Path) -> None:
    report = verify_archive(rewrite_archive(stored, tmp_path / "x.zip", drop=["checksums.txt"]))
    assert _kinds(report) == {("checksums.txt", "missing")}


def test_every_problem_is_reported_not_only_the_first(stored: Path, tmp_path: Path) -> None:
    added = f"projects/{ORTHO}/extra.bin"
    damaged = rewrite_archive(stored, tmp_path / "many.zip", drop=[CSV], add={added: b"x"})
    _flip_byte(damaged, PDF, 10)
    report = verify_archive(damaged)
    paths = {p.path for p in report.problems}
    assert {CSV, added, PDF} <= paths
    kinds = _kinds(report)
    assert (CSV, "missing") in kinds
    assert (added, "unexpected") in kinds


def test_not_a_zip_is_a_structure_problem(tmp_path: Path) -> None:
    fake = tmp_path / "fake_backup_20260101_000000.zip"
    fake.write_bytes(b"%PDF-1.4 this is not a zip archive\n" * 10)
    report = verify_archive(fake)
    assert not report.ok
    assert [p.kind for p in report.problems] == ["structure"]


def test_an_empty_file_is_a_structure_problem(tmp_path: Path) -> None:
    empty = tmp_path / "empty.zip"
    empty.write_bytes(b"")
    report = verify_archive(empty)
    assert not report.ok
    assert [p.kind for p in report.problems] == ["structure"]


def test_a_truncated_archive_is_damaged(stored: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.zip"
    cut.write_bytes(stored.read_bytes()[: stored.stat().st_size // 2])
    assert not verify_archive(cut).ok


def test_a_missing_file_is_reported_as_missing(tmp_path: Path) -> None:
    report = verify_archive(tmp_path / "nope.zip")
    assert (report.ok, report.status) == (False, "missing")
    assert report.problems[0].detail == "no such archive"


def test_a_folder_is_reported_as_missing(tmp_path: Path) -> None:
    report = verify_archive(tmp_path)
    assert (report.status, report.problems[0].detail) == ("missing", "not a file")


def test_worst_exit_code_damaged_over_missing_over_ok(archive: Path, tmp_path: Path) -> None:
    damaged = flip_member_byte(archive, "metadata.json", tmp_path / "damaged.zip")
    missing = tmp_path / "nope.zip"
    assert verify([archive]).exit_code == ExitCode.OK
    assert verify([archive, missing]).exit_code == ExitCode.USAGE
    assert verify([missing, damaged, archive]).exit_code == ExitCode.INTEGRITY


def test_a_foreign_zip_without_manifest_is_not_ours(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("projects/p/a.txt", b"a")
    report = verify_archive(foreign)
    assert not report.ok
    assert [(p.path, p.kind) for p in report.problems] == [("metadata.json", "manifest")]
    assert "not a fda-vault archive" in report.problems[0].detail


def test_a_newer_major_version_is_refused(stored: Path, tmp_path: Path) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["backup_version"] = "2.0.0"

    report = verify_archive(_edit_manifest(stored, tmp_path / "v2.zip", edit))
    assert not report.ok
    assert [p.kind for p in report.problems] == ["manifest"]
    assert "backup_version" in report.problems[0].detail


@pytest.mark.parametrize(
    "name",
    ["../escape.txt", "/etc/passwd", f"projects/{ORTHO}/..\\..\\evil", "projects/../x", "C:/x"],
)
def test_unsafe_member_names_are_reported(stored: Path, tmp_path: Path, name: str) -> None:
    damaged = rewrite_archive(stored, tmp_path / "unsafe.zip", add={name: b"evil"})
    report = verify_archive(damaged)
    assert not report.ok
    assert (name, "unsafe") in _kinds(report)


def test_a_symlink_member_is_reported(stored: Path, tmp_path: Path) -> None:
    link = zipfile.ZipInfo(f"projects/{ORTHO}/link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    shutil.copy(stored, tmp_path / "link.zip")
    with zipfile.ZipFile(tmp_path / "link.zip", "a") as zf:
        zf.writestr(link, "/etc/passwd")
    report = verify_archive(tmp_path / "link.zip")
    assert (f"projects/{ORTHO}/link", "unsafe") in _kinds(report)


def test_verify_is_ok_only_when_every_archive_is(stored: Path, tmp_path: Path) -> None:
    bad = rewrite_archive(stored, tmp_path / "bad.zip", drop=[PDF])
    good_result = verify([stored, stored])
    assert good_result.ok
    assert len(good_result.archives) == 2
    mixed = verify([stored, bad])
    assert not mixed.ok
    assert [r.ok for r in mixed.archives] == [True, False]
    assert [r.archive for r in mixed.archives] == [str(stored), str(bad)]


def test_files_checked_count_every_restored_byte(
    tmp_path: Path, projects_dir: Path, backups_dir: Path
) -> None:
    result = backup([CARDIAC], projects_dir=projects_dir, output_dir=backups_dir)
    report = verify_archive(Path(result.archive))
    data = [d for d in cardiac_files().values() if d is not None]
    assert report.files_checked == len(data)
    assert report.bytes_checked == sum(len(d) for d in data)


def test_problem_is_a_plain_model() -> None:
    problem = Problem(path="p", kind="missing", detail="gone")
    assert Problem.model_validate_json(problem.model_dump_json()) == problem


def test_verify_written_checks_the_manifest_bytes_and_everything_else(stored: Path) -> None:
    """What backup runs after writing: the manifest it holds stands for metadata.json only
    when the bytes on disk hash to what it serialized; the data is still read back."""
    with zipfile.ZipFile(stored) as zf:
        raw = zf.read("metadata.json")
    manifest = parse_manifest(raw, str(stored))
    digest = hashlib.sha256(raw).hexdigest()
    report = verify_written(stored, manifest, digest)
    assert report.ok
    assert report.files_checked == manifest.total_files

    other = verify_written(stored, manifest, hashlib.sha256(raw + b" ").hexdigest())
    assert not other.ok
    assert _kinds(other) == {("metadata.json", "manifest")}
    assert "differs from what was written" in other.problems[0].detail

    _flip_byte(stored, PROFILE)
    damaged = verify_written(stored, manifest, digest)
    assert _kinds(damaged) == {(PROFILE, "corrupt")}  # its CRC-32 no longer matches


def test_a_large_member_is_hashed_whole_and_a_forged_one_fails_sha256(
    projects_dir: Path, backups_dir: Path, tmp_path: Path
) -> None:
    """Members of 16 MiB and more are hashed on a thread beside the reading: every byte."""
    big = projects_dir / CARDIAC / "scans" / "device_history.img"
    big.parent.mkdir()
    data = bytearray(b"%PDF-1.7 scan\n" * (24 << 16))  # 21 MiB: deflated, several chunks
    big.write_bytes(data)
    result = backup(all_projects=True, projects_dir=projects_dir, output_dir=backups_dir)
    archive = Path(result.archive)
    assert verify_archive(archive).ok
    member = f"projects/{CARDIAC}/scans/device_history.img"
    data[len(data) - 3] ^= 0x20  # the last chunk: hashed last
    forged = rewrite_archive(archive, tmp_path / "forged.zip", replace={member: bytes(data)})
    assert _kinds(verify_archive(forged)) == {(member, "sha256")}


def _many_small_files(root: Path, count: int) -> Path:
    for i in range(count):
        path = root / f"K24{i % 2}000_openfda" / "records" / f"K{100000 + i}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"k_number": f"K{100000 + i}", "n": i, "pad": "x" * (i % 900)}))
    return root


def test_many_small_files_are_checked_in_worker_processes_and_damage_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parallel, "worker_count", lambda: 2)
    forked: list[int] = []
    real = parallel.map_in_forks

    def counted(*args: Any, **kwargs: Any) -> Any:
        forked.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(parallel, "map_in_forks", counted)
    projects = _many_small_files(tmp_path / "projects", 2400)
    archive = Path(
        backup(all_projects=True, projects_dir=projects, output_dir=tmp_path / "b").archive
    )
    report = verify_archive(archive)
    assert report.ok and report.files_checked == 2400
    # One member in the half a worker process checks, one in this process's half.
    late = "projects/K241000_openfda/records/K102399.json"
    early = "projects/K240000_openfda/records/K100002.json"
    flip_member_byte(archive, late)
    flip_member_byte(archive, early)
    assert {p.path for p in verify_archive(archive).problems} == {late, early}
    assert len(forked) == 3  # the backup's read-back and both verifies
