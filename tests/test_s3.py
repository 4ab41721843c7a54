"""Backups in object storage, against real S3 servers on loopback (moto and SeaweedFS).

Every test runs once per server (the ``s3`` fixture): the same commands a user types,
with the endpoint and keys in the environment as the AWS tools read them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tests.conftest import CliCall, backup_json
from tests.s3servers import Bucket
from tests.tree import snapshot


def _json(cli: CliCall, *args: str | Path, code: int = 0) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == code, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_round_trip_backup_list_verify_restore(
    cli: CliCall, projects_dir: Path, tmp_path: Path, s3: Bucket
) -> None:
    location = f"{s3.url}/laptop-1"
    made = backup_json(cli, "--all", "--projects-dir", projects_dir, "--output-dir", location)
    name = Path(made["archive"]).name
    assert made["archive"] == f"{location}/{name}"
    # Only the archive: no temporary object, no incomplete upload, no lock left behind.
    assert s3.keys() == [f"laptop-1/{name}"]
    assert s3.uploads() == []
    stored = s3.read(f"laptop-1/{name}")
    assert made["archive_sha256"] == hashlib.sha256(stored).hexdigest()
    assert made["archive_size"] == len(stored)

    listed = _json(cli, "list", "--backups-dir", location)
    assert [b["file"] for b in listed["backups"]] == [name]
    contents = _json(cli, "list", made["archive"])
    assert sorted(p["name"] for p in contents["projects"]) == sorted(made["projects"])

    checked = _json(cli, "verify", made["archive"])
    assert checked["ok"] and checked["archives"][0]["files_checked"] == made["files"]

    target = tmp_path / "restored"
    target.mkdir()
    restored = _json(cli, "restore", made["archive"], "--target-dir", target, "--yes")
    assert sorted(restored["restored"]) == sorted(made["projects"])
    for project in made["projects"]:
        assert snapshot(target / project) == snapshot(projects_dir / project)
