"""The Archive object: one way to open any archive we read, checks at the depth asked."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fda_vault._archive import Archive
from fda_vault._errors import IntegrityError, UsageError
from tests.conftest import CARDIAC, GLUCOSE, ORTHO, cardiac_files, rewrite_archive
from tests.legacy_archives import make_legacy_tar, make_legacy_zip


def test_our_archive_selects_lists_and_reads(archive: Path) -> None:
    with Archive.open(archive) as opened:
        assert opened.source_format == "fda-vault"
        opened.require()
        assert opened.select(None) == opened.manifest.projects
        assert opened.select([ORTHO, ORTHO]) == [ORTHO]
        with pytest.raises(UsageError) as info:
            opened.select(["K000000_nope"])
        assert info.value.reason == "unknown_project"
        (entry,) = [e for e in opened.files_of([CARDIAC]) if e.path.endswith("K201234_summary.pdf")]
        data = b"".join(opened.read(entry))
        assert data == cardiac_files()["pdfs/K201234_summary.pdf"]
        assert hashlib.sha256(data).hexdigest() == entry.sha256
        assert opened.data_problems([GLUCOSE])[2] == []


def test_depths_names_then_structure(archive: Path, tmp_path: Path) -> None:
    """A checksums.txt that disagrees passes a names-only check, not a structural one."""
    bad = rewrite_archive(archive, tmp_path / "bad.zip",
                          replace={"checksums.txt": b"0" * 64 + b"  projects/x/y\n"})  # fmt: skip
    with Archive.open(bad) as opened:
        opened.require("names")
        with pytest.raises(IntegrityError) as info:
            opened.require()
        assert info.value.what.startswith(str(bad))


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_legacy_archives_open_the_same_way(projects_dir: Path, tmp_path: Path, kind: str) -> None:
    if kind == "zip":
        made = make_legacy_zip(projects_dir, [ORTHO], tmp_path / "o_backup_20250101_000000.zip")
    else:
        made = make_legacy_tar(projects_dir, tmp_path / "t.tar.gz", project=ORTHO)
    with Archive.open(made) as opened:
        assert opened.path == made
        assert opened.source_format.startswith("legacy (fda-tools ")
        opened.require()
        assert opened.data_problems()[2] == []
        (entry,) = opened.files_of([ORTHO])
        assert (
            b"".join(opened.read(entry))
            == (projects_dir / ORTHO / entry.path.split("/", 1)[1]).read_bytes()
        )
