"""A corpus of hostile and damaged archives, each refused cleanly by restore, verify and list.

Every archive is built here from real ZIP bytes (``zipfile`` plus raw edits). For each:
the documented exit code, one ``error:`` line naming the problem, no traceback, nothing
written outside the target, and the project already at the target left byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import stat
import struct
import unicodedata
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from fda_vault._manifest import BackupManifest, FileEntry
from tests.conftest import CliCall
from tests.tree import snapshot

PROJECT = "K241234_pump"
GOOD_FILES = {
    "device_profile.json": b'{"device": "infusion pump", "class": "II"}\n',
    "drafts/summary.md": b"# 510(k) summary\n" + b"Substantially equivalent.\n" * 200,
}


@dataclass
class Member:
    name: str
    data: bytes
    unix_mode: int = stat.S_IFREG | 0o644
    in_manifest: bool = True


def _manifest(members: list[Member], projects: list[str]) -> dict[str, object]:
    entries = [
        FileEntry(
            path=m.name.removeprefix("projects/"),
            size=len(m.data),
            sha256=hashlib.sha256(m.data).hexdigest(),
            mtime=1_700_000_000.0,
            mode=0o644,
        )
        for m in members
        if m.in_manifest
    ]
    manifest = BackupManifest.model_construct(
        backup_timestamp="2026-11-26T02:00:00+00:00",
        projects=projects,
        total_projects=len(projects),
        total_files=len(entries),
        total_bytes=sum(e.size for e in entries),
        checksums={e.path: e.sha256 for e in entries},
        files=entries,
    )
    data: dict[str, object] = json.loads(BackupManifest.model_dump_json(manifest, by_alias=True))
    return data


def forge(
    path: Path,
    members: list[Member],
    *,
    projects: list[str] | None = None,
    edit_manifest: Callable[[dict[str, object]], None] | None = None,
    checksums: bytes | None = None,
    manifest_bytes: bytes | None = None,
) -> Path:
    """Write a ZIP whose manifest describes ``members`` (then edited as asked)."""
    manifest = _manifest(members, projects or [PROJECT])
    if edit_manifest:
        edit_manifest(manifest)
    files = manifest["files"]
    assert isinstance(files, list)
    lines = sorted(f"{f['sha256']}  projects/{f['path']}\n" for f in files)
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        warnings.simplefilter("ignore")  # duplicate names are the point of some cases
        for member in members:
            info = zipfile.ZipInfo(member.name, date_time=(2026, 11, 26, 2, 0, 0))
            info.external_attr = member.unix_mode << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, member.data)
        zf.writestr("checksums.txt", checksums if checksums is not None else "".join(lines))
        zf.writestr(
            "metadata.json",
            manifest_bytes if manifest_bytes is not None else json.dumps(manifest).encode(),
        )
    return path


def good_members() -> list[Member]:
    return [Member(f"projects/{PROJECT}/{rel}", data) for rel, data in GOOD_FILES.items()]


def with_member(member: Member) -> Callable[[Path], Path]:
    return lambda p: forge(p, [*good_members(), member])


def _raw_edit(edit: Callable[[bytearray], None]) -> Callable[[Path], Path]:
    def build(path: Path) -> Path:
        forge(path, good_members())
        data = bytearray(path.read_bytes())
        edit(data)
        path.write_bytes(bytes(data))
        return path

    return build


def _central_entries(data: bytearray) -> list[int]:
    offsets, start = [], 0
    while (found := data.find(b"PK\x01\x02", start)) != -1:
        offsets.append(found)
        start = found + 4
    return offsets


def _point_second_entry_at_first(data: bytearray) -> None:
    first, second = _central_entries(data)[:2]
    data[second + 42 : second + 46] = data[first + 42 : first + 46]


def _forge_huge_size(data: bytearray) -> None:
    first = _central_entries(data)[0]
    data[first + 24 : first + 28] = struct.pack("<I", 0x7FFFFFFF)


def _flip_in_first_member(data: bytearray) -> None:
    data[60] ^= 0x55


def _truncate(keep: float) -> Callable[[bytearray], None]:
    def cut(data: bytearray) -> None:
        del data[int(len(data) * keep) :]

    return cut


def _set_encrypted_flag(data: bytearray) -> None:
    first = _central_entries(data)[0]
    data[first + 8] |= 0x01
    data[6] |= 0x01


def _edit(key: str, value: object) -> Callable[[dict[str, object]], None]:
    def apply(manifest: dict[str, object]) -> None:
        manifest[key] = value

    return apply


def _wrong_sha(manifest: dict[str, object]) -> None:
    files = manifest["files"]
    assert isinstance(files, list)
    files[0]["sha256"] = "0" * 64
    checks = manifest["checksums"]
    assert isinstance(checks, dict)
    checks[files[0]["path"]] = "0" * 64


def _missing_member(path: Path) -> Path:
    """The manifest lists a file the archive does not hold."""
    members = good_members()
    forge(path, members)
    with zipfile.ZipFile(path) as zf:
        manifest = zf.read("metadata.json")
        checksums = zf.read("checksums.txt")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(members[1].name, members[1].data)
        zf.writestr("checksums.txt", checksums)
        zf.writestr("metadata.json", manifest)
    return path


def _trailing_data(path: Path) -> Path:
    """The first member's deflate stream ends before its data does: bytes hide after it."""
    members = good_members()
    forge(path, members)
    with zipfile.ZipFile(path) as zf:
        manifest, checksums = zf.read("metadata.json"), zf.read("checksums.txt")
    first = members[0]
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    payload = deflate.compress(first.data) + deflate.flush() + b"bytes the stream never reads"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo(first.name, date_time=(2026, 11, 26, 2, 0, 0))
        info.external_attr = first.unix_mode << 16
        zf.writestr(info, payload)  # stored; made "deflated" below
        for member in members[1:]:
            zf.writestr(member.name, member.data, zipfile.ZIP_DEFLATED)
        zf.writestr("checksums.txt", checksums)
        zf.writestr("metadata.json", manifest)
    data = bytearray(path.read_bytes())
    crc, size = zlib.crc32(first.data), len(first.data)
    central = _central_entries(data)[0]
    for method_at, crc_at, size_at in ((8, 14, 22), (central + 10, central + 16, central + 24)):
        struct.pack_into("<H", data, method_at, zipfile.ZIP_DEFLATED)
        struct.pack_into("<I", data, crc_at, crc)
        struct.pack_into("<I", data, size_at, size)
    path.write_bytes(bytes(data))
    return path


NFC = unicodedata.normalize("NFC", "résumé.md")
NFD = unicodedata.normalize("NFD", "résumé.md")

# name -> (builder, words the single error line must contain)
CORPUS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "dotdot": (with_member(Member(f"projects/{PROJECT}/../../evil.txt", b"x")), "evil.txt"),
    "dotdot_project": (with_member(Member("projects/../evil.txt", b"x")), "evil.txt"),
    "absolute": (with_member(Member("/etc/evil.txt", b"x")), "absolute"),
    "drive_letter": (with_member(Member("C:/evil.txt", b"x")), "evil.txt"),
    "backslash": (
        with_member(Member(f"projects/{PROJECT}/..\\..\\evil.txt", b"x")),
        "backslash",
    ),
    "nul_byte": (with_member(Member(f"projects/{PROJECT}/a\x00b.txt", b"x")), "control"),
    "newline": (with_member(Member(f"projects/{PROJECT}/a\nb.txt", b"x")), "control"),
    "empty_segment": (with_member(Member(f"projects/{PROJECT}//a.txt", b"x")), "empty segment"),
    "outside_projects": (with_member(Member("elsewhere/a.txt", b"x")), "outside"),
    "symlink_entry": (
        with_member(Member(f"projects/{PROJECT}/link", b"/etc/passwd", stat.S_IFLNK | 0o777)),
        "symlink",
    ),
    "fifo_entry": (
        with_member(Member(f"projects/{PROJECT}/fifo", b"", stat.S_IFIFO | 0o644)),
        "special",
    ),
    "duplicate_name": (
        with_member(Member(f"projects/{PROJECT}/device_profile.json", b"evil twin")),
        "duplicate",
    ),
    "nfc_duplicate": (
        lambda p: forge(
            p,
            [
                *good_members(),
                Member(f"projects/{PROJECT}/{NFC}", b"one"),
                Member(f"projects/{PROJECT}/{NFD}", b"two"),
            ],
        ),
        "NFC",
    ),
    "member_not_in_manifest": (
        with_member(Member(f"projects/{PROJECT}/stowaway.sh", b"rm -rf ~", in_manifest=False)),
        "stowaway.sh",
    ),
    "manifest_project_dotdot": (
        lambda p: forge(p, good_members(), edit_manifest=_edit("projects", [".."])),
        "projects",
    ),
    "manifest_project_slash": (
        lambda p: forge(p, good_members(), edit_manifest=_edit("projects", ["a/b"])),
        "projects",
    ),
    "manifest_missing_file": (_missing_member, "missing"),
    "overlapping_entries": (_raw_edit(_point_second_entry_at_first), "overlap"),
    "forged_size_bomb": (_raw_edit(_forge_huge_size), "device_profile.json"),
    "crc_error": (_raw_edit(_flip_in_first_member), "device_profile.json"),
    "trailing_data": (_trailing_data, "after the end of the deflate stream"),
    "truncated_half": (_raw_edit(_truncate(0.5)), "ZIP"),
    "truncated_tail": (_raw_edit(_truncate(0.98)), "ZIP"),
    "encrypted_member": (_raw_edit(_set_encrypted_flag), "encrypted"),
    "empty_file": (lambda p: (p.write_bytes(b""), p)[1], "ZIP"),
    "not_a_zip": (lambda p: (p.write_bytes(b"%PDF-1.4\n" + b"\x00" * 500), p)[1], "ZIP"),
    "no_manifest": (
        lambda p: (zipfile.ZipFile(p, "w").writestr(f"projects/{PROJECT}/a", b"x"), p)[1],
        "metadata.json",
    ),
    "manifest_not_json": (
        lambda p: forge(p, good_members(), manifest_bytes=b"{not json"),
        "not valid JSON",
    ),
    "manifest_wrong_types": (
        lambda p: forge(p, good_members(), edit_manifest=_edit("total_files", "many")),
        "total_files",
    ),
    "unknown_major_version": (
        lambda p: forge(p, good_members(), edit_manifest=_edit("backup_version", "2.0.0")),
        "version",
    ),
    "checksums_disagree": (
        lambda p: forge(p, good_members(), checksums=b"0" * 64 + b"  projects/x/y\n"),
        "checksums",
    ),
    "wrong_sha256": (
        lambda p: forge(p, good_members(), edit_manifest=_wrong_sha),
        "SHA-256",
    ),
}


def test_the_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 25


@pytest.fixture
def existing(tmp_path: Path, cli: CliCall) -> Path:
    """A target holding the project already, restored from a good archive, then edited."""
    good = forge(tmp_path / "good.zip", good_members())
    target = tmp_path / "target"
    result = cli("restore", good, "--target-dir", target)
    assert result.exit_code == 0, result.stderr
    (target / PROJECT / "device_profile.json").write_bytes(b"local edits, newer than any backup")
    return target


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_restore_refuses_cleanly(case: str, tmp_path: Path, cli: CliCall, existing: Path) -> None:
    build, words = CORPUS[case]
    archive = build(tmp_path / f"{case}.zip")
    outside = tmp_path.parent / f"{tmp_path.name}-outside-marker"
    before_target = snapshot(existing / PROJECT)
    before_around = {p.name for p in tmp_path.parent.iterdir()}

    result = cli("restore", archive, "--target-dir", existing, "--force")

    assert result.exit_code == 3, (case, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert words.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in result.stderr
    assert snapshot(existing / PROJECT) == before_target
    assert not outside.exists()
    assert {p.name for p in tmp_path.parent.iterdir()} == before_around
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path.parent / "evil.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["good.zip", f"{case}.zip", "target", "home"]
    )


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_verify_reports_exit_3(case: str, tmp_path: Path, cli: CliCall) -> None:
    build, _words = CORPUS[case]
    archive = build(tmp_path / f"{case}.zip")
    result = cli("verify", archive, "--json")
    assert result.exit_code == 3, (case, result.stdout)
    report = json.loads(result.stdout)["archives"][0]
    assert report["ok"] is False and report["problems"]
    assert "Traceback" not in result.stderr


def test_a_symlinked_project_at_the_target_is_moved_aside_not_followed(
    tmp_path: Path, cli: CliCall
) -> None:
    good = forge(tmp_path / "good.zip", good_members())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_bytes(b"do not touch")
    target = tmp_path / "target"
    target.mkdir()
    (target / PROJECT).symlink_to(elsewhere)
    result = cli("restore", good, "--target-dir", target, "--force")
    assert result.exit_code == 0, result.stderr
    assert not (target / PROJECT).is_symlink()
    assert (target / PROJECT / "device_profile.json").read_bytes() == GOOD_FILES[
        "device_profile.json"
    ]
    assert sorted(p.name for p in elsewhere.iterdir()) == ["precious.txt"]
    assert (elsewhere / "precious.txt").read_bytes() == b"do not touch"


@pytest.mark.parametrize(
    "case",
    ["dotdot", "absolute", "backslash", "symlink_entry", "duplicate_name", "overlapping_entries"],
)
def test_list_refuses_unsafe_names_too(case: str, tmp_path: Path, cli: CliCall) -> None:
    build, _words = CORPUS[case]
    archive = build(tmp_path / f"{case}.zip")
    result = cli("list", archive)
    assert result.exit_code == 3, result.stdout
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
