"""A backup's large members read back while the archive is written (_follow.ReadBehind),
and the final check that trusts what was read back only where the archive agrees."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
import zlib
from pathlib import Path

import pytest

from fda_vault import _checks
from fda_vault._backup import backup
from fda_vault._follow import FollowedMember, ReadBehind
from fda_vault._manifest import parse_manifest
from fda_vault._members import MANIFEST_NAME
from fda_vault._verify import verify_written
from fda_vault._zipwriter import ZipWriter
from tests.conftest import MakeProject

BIG = b"".join(f"{i:08d} device log line, the pump ran\n".encode() for i in range(80_000))
ZEROS = bytes(3 << 20)


def _write(path: Path, entries: list[tuple[str, list[bytes]]], cut_after: int = -1) -> ReadBehind:
    """Stream ``entries`` (name, blocks) into a ZIP at ``path`` with a ReadBehind; the
    entry at index ``cut_after`` is cut off once and written again with its blocks
    reversed, as the packer does when a file changed while it was read."""
    behind = ReadBehind(str(path))
    with path.open("wb") as fp:
        writer = ZipWriter(fp, follow=behind)
        for index, (name, blocks) in enumerate(entries):
            for attempt in (1, 2) if index == cut_after else (1,):
                mark = writer.tell()
                writer.begin_entry(name, mtime=0, external_attr=0, size_hint=2 << 20, stored=True)
                crc = size = 0
                for block in blocks if attempt == 2 or index != cut_after else blocks[::-1]:
                    writer.write_data(block)
                    crc, size = zlib.crc32(block, crc), size + len(block)
                if attempt == 1 and index == cut_after:
                    writer.rollback_to(mark)
                    continue
                writer.end_entry(crc32=crc, size=size)
        writer.close()
    return behind


def test_each_large_member_is_read_back_from_the_file_as_written(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    blocks = [BIG[i : i + (1 << 20)] for i in range(0, len(BIG), 1 << 20)]
    behind = _write(path, [("a.log", blocks), ("b.log", [b"other" * 100_000]), ("c.log", blocks)])
    found = behind.results()
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        assert [found[i.header_offset].name for i in infos] == [b"a.log", b"b.log", b"c.log"]
        for info in infos:
            seen = found[info.header_offset]
            data = zf.read(info)
            assert (seen.size, seen.crc32) == (len(data), info.CRC)
            assert seen.sha256 == hashlib.sha256(data).hexdigest()
            assert seen.compressed_size == info.compress_size and not seen.deflated


def test_a_member_cut_off_and_written_again_is_read_back_as_it_is_now(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    blocks = [b"first" * 50_000, b"second" * 50_000, b"third" * 50_000]
    found = _write(path, [("a.log", blocks), ("b.log", blocks)], cut_after=1).results()
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("b.log")
        assert found[info.header_offset].sha256 == hashlib.sha256(zf.read(info)).hexdigest()
        assert set(found) == {i.header_offset for i in zf.infolist()}  # nothing stale kept


def _archive_with_large_files(tmp_path: Path, make_project: MakeProject) -> Path:
    root = tmp_path / "projects"
    make_project(root, "K240001_pump", {"logs/run.log": BIG, "disk.img": ZEROS, "a.json": b"{}"})
    result = backup(["K240001_pump"], projects_dir=root, output_dir=tmp_path / "backups")
    assert result.verified
    return Path(result.archive)


def _as_read_back(path: Path) -> tuple[dict[int, FollowedMember], bytes]:
    """What a ReadBehind would have found in the archive at ``path`` (computed here by
    zipfile, independently), and its manifest's bytes."""
    found = {}
    with zipfile.ZipFile(path) as zf:
        raw = io.BytesIO(path.read_bytes())
        for info in zf.infolist():
            if info.file_size < 1 << 20:
                continue
            raw.seek(info.header_offset + 26)
            lengths = raw.read(4)
            start = info.header_offset + 30 + int.from_bytes(lengths[:2], "little")
            start += int.from_bytes(lengths[2:], "little")
            data = zf.read(info)
            found[info.header_offset] = FollowedMember(
                info.orig_filename.encode(), info.header_offset, start, info.compress_size,
                info.CRC, len(data), hashlib.sha256(data).hexdigest(),
                info.compress_type == zipfile.ZIP_DEFLATED,
            )  # fmt: skip
        manifest = zf.read(MANIFEST_NAME)
    assert len(found) == 2
    return found, manifest


def _check(path: Path, found: dict[int, FollowedMember], manifest: bytes) -> tuple[bool, list[str]]:
    report = verify_written(
        path, parse_manifest(manifest, path.name), hashlib.sha256(manifest).hexdigest(),
        followed=found,
    )  # fmt: skip
    return report.ok, [f"{p.kind}: {p.path}" for p in report.problems]


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    read: list[str] = []
    real = _checks.iter_member

    def counting(zf, info, size, archive):  # type: ignore[no-untyped-def]
        if info.filename.startswith("projects/"):  # not checksums.txt (read by the checks)
            read.append(info.filename)
        return real(zf, info, size, archive)

    real_small = _checks.read_small_members

    def counting_small(zf, wanted, archive):  # type: ignore[no-untyped-def]
        read.extend(info.filename for info, _size in wanted)
        return real_small(zf, wanted, archive)

    monkeypatch.setattr(_checks, "iter_member", counting)
    monkeypatch.setattr(_checks, "read_small_members", counting_small)
    return read


def test_the_final_check_trusts_what_was_read_back_only_where_it_matches(
    tmp_path: Path, make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _archive_with_large_files(tmp_path, make_project)
    found, manifest = _as_read_back(path)
    read = _count_reads(monkeypatch)
    assert _check(path, found, manifest) == (True, [])
    assert read == ["projects/K240001_pump/a.json"]  # the large ones were not read again

    # A read-back that saw other content is believed (so it is what decides)...
    offset = min(found)
    wrong = found[offset]._replace(sha256="0" * 64)
    ok, problems = _check(path, {**found, offset: wrong}, manifest)
    assert not ok and problems == [f"sha256: projects/{_name_at(path, offset)}"]
    # ...but only while it matches the archive: any other CRC, size or offset, and the
    # member is read again in full.
    read.clear()
    for changed in (
        found[offset]._replace(crc32=found[offset].crc32 ^ 1),
        found[offset]._replace(size=found[offset].size - 1),
        found[offset]._replace(data_start=found[offset].data_start + 1),
        found[offset]._replace(name=b"projects/K240001_pump/other"),
        found[offset]._replace(deflated=not found[offset].deflated),
    ):
        assert _check(path, {**found, offset: changed._replace(sha256="0" * 64)}, manifest)[0]
    assert read.count(f"projects/{_name_at(path, offset)}") == 5


def _name_at(path: Path, offset: int) -> str:
    with zipfile.ZipFile(path) as zf:
        info = next(i for i in zf.infolist() if i.header_offset == offset)
    return info.filename.removeprefix("projects/")


def test_a_local_header_damaged_after_the_read_back_is_found(
    tmp_path: Path, make_project: MakeProject
) -> None:
    path = _archive_with_large_files(tmp_path, make_project)
    found, manifest = _as_read_back(path)
    offset = max(found)
    with path.open("r+b") as fp:  # the local header's name, one byte changed
        fp.seek(offset + 30)
        first = fp.read(1)
        fp.seek(offset + 30)
        fp.write(bytes([first[0] ^ 0x20]))
    ok, problems = _check(path, found, manifest)
    assert not ok and problems == [f"corrupt: projects/{_name_at(path, offset)}"]


def test_a_backup_reads_its_large_files_back_while_writing(
    tmp_path: Path, make_project: MakeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = _count_reads(monkeypatch)
    path = _archive_with_large_files(tmp_path, make_project)
    assert read == ["projects/K240001_pump/a.json"]  # the final check read only the small one
    with zipfile.ZipFile(path) as zf:
        assert zf.read("projects/K240001_pump/logs/run.log") == BIG
        assert zf.read("projects/K240001_pump/disk.img") == ZEROS
    assert not [name for name in os.listdir(path.parent) if ".tmp" in name]
