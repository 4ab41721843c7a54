"""Member-name checks: the one-pass shortcut never accepts what the rules refuse."""

from __future__ import annotations

import hashlib
import json
import stat
import unicodedata
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fda_vault import _members as members
from fda_vault._backup import backup
from fda_vault._checks import check_names, check_structure, manifest_problems
from fda_vault._members import (
    all_entries_plain,
    all_members_plain,
    all_paths_plain,
    is_regular_or_dir,
    member_name_problem,
    open_archive,
)
from fda_vault._zipindex import Member
from tests.conftest import CARDIAC, rewrite_archive

# Pieces that matter to some rule: separators, dots, drive letters, controls, non-ASCII.
_PIECES = st.sampled_from(
    ["projects/", "projects", "/", "//", ".", "..", "./", "../", ":", "C:", "\\", "\x00",
     "\n", "\x1f", "\x7f", "a", "b7", " ", "é", "e\u0301", "K", "metadata.json",
     "checksums.txt", ".hidden", "~"]
)  # fmt: skip
_NAMES = st.lists(_PIECES, max_size=8).map("".join)


@settings(max_examples=3000, deadline=None)
@given(_NAMES)
@pytest.mark.slow
def test_the_shortcut_accepts_only_names_every_rule_accepts(name: str) -> None:
    if all_members_plain([name]):
        assert members._explain_member_name(name) is None
    if all_paths_plain([name]):
        assert members._explain_member_name("projects/" + name) is None


@pytest.mark.parametrize(
    "name",
    [
        "", "/etc/passwd", "projects/../x", "projects/p/../../x", "projects/p/./x",
        "projects/p//x", "projects/p\\x", "projects/C:/x", "C:/projects/p/x",
        "projects/p/x\x00", "projects/p/x\n", "projects/.p/x", "projects/p", "other/p/x",
        "projects/p/..", "projects/p/./",
    ],
)  # fmt: skip
def test_bad_names_are_refused_by_both_paths(name: str) -> None:
    assert member_name_problem(name) is not None
    assert members._explain_member_name(name) is not None
    assert not all_members_plain(["projects/p/fine.txt", name])


def test_good_names_pass_the_shortcut() -> None:
    good = ["projects/p/a.txt", "projects/p/d/", "projects/K1_é/x y/z.json", "metadata.json"]
    assert all_members_plain(good)
    assert all(member_name_problem(name) is None for name in good)


@pytest.fixture
def intact(projects_dir: Path, backups_dir: Path) -> Path:
    result = backup(all_projects=True, projects_dir=projects_dir, output_dir=backups_dir)
    return Path(result.archive)


def test_names_equal_after_nfc_or_case_folding_are_found(intact: Path, tmp_path: Path) -> None:
    composed = f"projects/{CARDIAC}/caf\u00e9.txt"
    decomposed = unicodedata.normalize("NFD", composed)
    upper = f"projects/{CARDIAC}/NOTES.TXT"
    twins = {composed: b"1", decomposed: b"2"}
    nfc_twins = rewrite_archive(intact, tmp_path / "nfc.zip", add=twins)
    case_twins = rewrite_archive(
        intact, tmp_path / "case.zip", add={upper: b"1", upper.lower(): b"2"}
    )
    with open_archive(nfc_twins) as zf:
        assert [p.path for p in check_names(zf)[0]] == [decomposed]
    with open_archive(case_twins) as zf:
        assert check_names(zf)[0] == []
        assert [p.path for p in check_names(zf, casefold=True)[0]] == [upper.lower()]


def _edited(source: Path, target: Path, edit: Any) -> Path:
    with open_archive(source) as zf:
        data = json.loads(members.read_manifest(zf, source).to_json_bytes())
    edit(data)
    return rewrite_archive(source, target, replace={"metadata.json": json.dumps(data).encode()})


def test_a_file_listed_under_a_folder_name_is_not_taken_for_the_folder(
    intact: Path, tmp_path: Path
) -> None:
    # The manifest lists "<project>/extra/" as a file; the archive holds that folder.
    path = f"{CARDIAC}/extra/"
    empty = hashlib.sha256(b"").hexdigest()

    def edit(data: dict[str, Any]) -> None:
        entry = {"path": path, "size": 0, "sha256": empty, "mtime": 0.0, "mode": 0o644}
        data["files"].append(entry)
        data["checksums"][path] = empty
        data["total_files"] += 1

    forged = rewrite_archive(
        _edited(intact, tmp_path / "edited.zip", edit),
        tmp_path / "forged.zip",
        add={f"projects/{path}": b""},
    )
    with open_archive(forged) as zf:
        manifest = members.read_manifest(zf, forged)
        assert manifest_problems(manifest) == []
        kinds = {(p.path, p.kind) for p in check_structure(zf, manifest, forged)}
    assert (f"projects/{path}", "unexpected") in kinds
    assert (f"projects/{path}", "missing") in kinds


def test_manifest_paths_outside_the_listed_projects_are_found(intact: Path, tmp_path: Path) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["files"][0]["path"] = "K000000_unlisted/a.txt"
        data["empty_dirs"].append(f"{CARDIAC}/../escape")

    with open_archive(intact) as zf:
        manifest = members.read_manifest(zf, intact)
    data = json.loads(manifest.to_json_bytes())
    edit(data)
    edited = type(manifest).model_validate(data)
    details = {(p.path, p.detail) for p in manifest_problems(edited)}
    assert ("K000000_unlisted/a.txt", "belongs to a project the manifest does not list") in details
    assert any(path == f"{CARDIAC}/../escape" and "'..'" in why for path, why in details)


@pytest.mark.parametrize("folder", [False, True])
@pytest.mark.parametrize("file_type", [0, stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK, stat.S_IFIFO])
@pytest.mark.parametrize("flags", [0, 0x1, 0x800, 0x801])
def test_entry_kinds_judged_at_once_as_one_by_one(folder: bool, file_type: int, flags: int) -> None:
    name = "projects/p/d/" if folder else "projects/p/f.txt"
    member = Member(name, flags, 8, 0, 0, 0, 0, (file_type | 0o644) << 16)
    alone = is_regular_or_dir(member) and not flags & 0x1
    assert all_entries_plain([member]) == alone
    plain = Member("projects/p/g.txt", 0, 8, 0, 0, 0, 0, (stat.S_IFREG | 0o644) << 16)
    assert all_entries_plain([plain, member]) == alone


def test_a_cp437_name_is_measured_in_its_stored_bytes(tmp_path: Path) -> None:
    # Two members back to back, the first named in cp437 with a non-ASCII byte (0x82 is
    # "é"): its UTF-8 form is a byte longer than stored, which must not read as overlap.
    path = tmp_path / "cp437.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for name in ("projects/p/caf#.txt", "projects/p/next.txt"):
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            zf.writestr(info, b"data")
    raw = path.read_bytes()
    assert raw.count(b"caf#") == 2  # the local and the central header
    path.write_bytes(raw.replace(b"caf#", b"caf\x82"))
    with open_archive(path) as zf:
        assert zf.infolist()[0].filename == "projects/p/café.txt"
        assert check_names(zf)[0] == []
