"""Backups in object storage, against real S3 servers on loopback (moto and SeaweedFS).

Every test runs once per server (the ``s3`` fixture): the same commands a user types,
with the endpoint and keys in the environment as the AWS tools read them.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import signal
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import fda_vault
from fda_vault import _s3
from fda_vault._errors import FdaVaultError, IntegrityError
from fda_vault._members import open_archive, read_manifest
from fda_vault._progress import SilentProgress
from fda_vault._s3 import MultipartSink, ObjectPath, S3Object, S3Prefix
from fda_vault._storage import S3Location
from fda_vault._zipwriter import ZipWriter
from tests.conftest import CARDIAC, CliCall, FrozenClock, backup_json
from tests.s3servers import Bucket, DroppingProxy, free_port
from tests.test_storage import write_pending
from tests.tree import snapshot
from tests.zipbytes import flip_member_byte


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


def test_copy_offsite_and_back_only_what_is_missing(
    cli: CliCall, projects_dir: Path, backups_dir: Path, tmp_path: Path, s3: Bucket
) -> None:
    first = backup_json(cli, "--all", "--projects-dir", projects_dir, "--output-dir", backups_dir)
    offsite = f"{s3.url}/offsite"
    planned = _json(cli, "copy", "--dry-run", backups_dir, offsite)
    assert [(a["file"], a["status"]) for a in planned["archives"]] == [
        (Path(first["archive"]).name, "would copy")
    ]
    assert s3.keys() == []  # a dry run writes nothing, not even a lock
    copied = _json(cli, "copy", backups_dir, offsite)
    item = copied["archives"][0]
    assert item["status"] == "copied" and item["sha256"] == first["archive_sha256"]
    assert s3.keys() == [f"offsite/{item['file']}"]
    assert hashlib.sha256(s3.read(f"offsite/{item['file']}")).hexdigest() == first["archive_sha256"]
    # A second copy finds it there and copies nothing.
    again = _json(cli, "copy", backups_dir, offsite)
    assert [a["status"] for a in again["archives"]] == ["present"] and again["copied"] == 0
    said = cli("copy", backups_dir, offsite)
    assert said.stdout == f"{backups_dir} -> {offsite}: nothing to copy, 1 already there\n"
    # Back from S3 to a new disk: the same bytes, and they verify.
    usb = tmp_path / "usb"
    back = _json(cli, "copy", offsite, usb)
    assert back["copied"] == 1
    restored = usb / item["file"]
    assert hashlib.sha256(restored.read_bytes()).hexdigest() == first["archive_sha256"]
    assert _json(cli, "verify", restored)["ok"]


def test_a_damaged_object_is_refused_by_verify_and_restore(
    cli: CliCall, projects_dir: Path, tmp_path: Path, s3: Bucket
) -> None:
    made = backup_json(cli, "--all", "--projects-dir", projects_dir, "--output-dir", s3.url)
    name = Path(made["archive"]).name
    local = tmp_path / name
    local.write_bytes(s3.read(name))
    member = next(n for n in zipfile.ZipFile(local).namelist() if n.endswith(".pdf"))
    s3.put(name, flip_member_byte(local, member).read_bytes())  # one bit, by a direct PUT
    checked = _json(cli, "verify", made["archive"], code=3)
    assert checked["archives"][0]["status"] == "damaged"
    target = tmp_path / "target"
    target.mkdir()
    refused = cli("restore", made["archive"], "--target-dir", target, "--yes")
    assert refused.exit_code == 3 and member.removeprefix("data/") in refused.stderr
    assert list(target.iterdir()) == []


def test_prune_on_s3_keeps_the_newest_and_deletes_the_rest(
    cli: CliCall, projects_dir: Path, s3: Bucket, frozen_clock: FrozenClock
) -> None:
    names = []
    for day in (1, 2, 3):
        frozen_clock.now = datetime(2026, 11, day, 2, 0, tzinfo=timezone.utc)
        made = backup_json(
            cli, "-p", CARDIAC, "--projects-dir", projects_dir, "--output-dir", s3.url, "--rehash"
        )
        names.append(Path(made["archive"]).name)
    result = _json(cli, "prune", "--backups-dir", s3.url, "--keep-last", "1", "--yes")
    assert result["removed"] == 2
    assert s3.keys() == [names[-1]]


def test_an_archive_under_object_lock_survives_prune(
    cli: CliCall, projects_dir: Path, s3_locked: Bucket, frozen_clock: FrozenClock
) -> None:
    s3 = s3_locked
    names = []
    for day, lock in ((1, "1"), (2, "0")):
        frozen_clock.now = datetime(2026, 11, day, 2, 0, tzinfo=timezone.utc)
        made = backup_json(
            cli, "-p", CARDIAC, "--projects-dir", projects_dir, "--output-dir", s3.url,
            "--object-lock-days", lock, "--object-lock-mode", "governance", "--rehash",
        )  # fmt: skip
        names.append(Path(made["archive"]).name)
    head = s3.client.head_object(Bucket=s3.name, Key=s3.key(names[0]))
    assert head["ObjectLockMode"] == "GOVERNANCE"
    result = _json(cli, "prune", "--backups-dir", s3.url, "--keep-last", "1", "--yes")
    kept = {a["file"]: a for a in result["archives"]}
    assert kept[names[0]]["kept"] and kept[names[0]]["reasons"][0].startswith("locked until ")
    assert result["removed"] == 0 and s3.keys() == sorted(names)


def test_s3_failures_are_one_line_with_their_reason(
    cli: CliCall, projects_dir: Path, s3: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = cli("list", "--backups-dir", "s3://fda-vault-no-such-bucket/x", "--json")
    assert missing.exit_code == 2
    assert json.loads(missing.stdout)["error"]["reason"] == "no_such_bucket"
    gone = cli("verify", f"{s3.url}/all_projects_backup_20260101_000000.zip")
    assert gone.exit_code == 2 and "MISSING" in gone.stdout
    if s3.server == "seaweedfs":  # moto's server accepts any key: only SeaweedFS checks them
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
        _s3.client.cache_clear()
        denied = cli(
            "backup", "--all", "--projects-dir", projects_dir, "--output-dir", s3.url, "--json"
        )
        assert denied.exit_code == 1, denied.stderr
        assert json.loads(denied.stdout)["error"]["reason"] == "access_denied"
        assert "wrong-secret" not in denied.stdout + denied.stderr
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")
    _s3.client.cache_clear()
    down = cli("list", "--backups-dir", s3.url, "--json")
    assert down.exit_code == 1 and json.loads(down.stdout)["error"]["reason"] == "network"
    assert down.stderr.count("\n") == 1 and "Traceback" not in down.stderr


def test_list_of_an_archive_reads_only_its_end(
    projects_dir: Path, tmp_path: Path, s3: Bucket
) -> None:
    big = projects_dir / CARDIAC / "scans"
    big.mkdir()
    rng = random.Random(5)
    for i in range(12):
        (big / f"scan_{i}.pdf").write_bytes(rng.randbytes(4 << 20))
    made = fda_vault.backup(all_projects=True, projects_dir=projects_dir, output_dir=s3.url)
    path = ObjectPath(s3.name, s3.key(Path(made.archive).name))
    with open_archive(path) as index:
        read_manifest(index, path)
        fetched = index.source.fetched  # type: ignore[attr-defined]
    assert made.archive_size > 48 << 20
    assert fetched < made.archive_size * 0.05, (fetched, made.archive_size)


def test_a_repeat_backup_to_s3_copies_unchanged_members_from_the_parent(
    cli: CliCall, projects_dir: Path, s3: Bucket, frozen_clock: FrozenClock
) -> None:
    # Later than the files' ctime by more than the race window of 3 s.
    start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1)
    frozen_clock.now = start
    first = backup_json(cli, "--all", "--projects-dir", projects_dir, "--output-dir", s3.url)
    frozen_clock.now = start + timedelta(days=1)
    second = backup_json(cli, "--all", "--projects-dir", projects_dir, "--output-dir", s3.url)
    assert second["parent"] == Path(first["archive"]).name
    assert second["reused_files"] == first["files"] > 0
    assert _json(cli, "verify", second["archive"])["ok"]


@pytest.mark.slow
def test_kill_9_during_an_s3_backup_leaves_no_archive_and_the_next_run_cleans_up(
    tmp_path: Path, s3: Bucket
) -> None:
    projects = tmp_path / "projects"
    rng = random.Random(3)
    for i in range(16):
        path = projects / "K9" / f"scan_{i:02d}.pdf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(3 << 20))
    cmd = [sys.executable, "-m", "fda_vault", "backup", "--all", "--projects-dir",
           str(projects), "--output-dir", s3.url, "-q"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=s3.env())
    deadline = time.monotonic() + 60
    while not s3.uploads() and time.monotonic() < deadline:
        time.sleep(0.05)  # killed once its upload is under way
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not [key for key in s3.keys() if key.endswith(".zip")]  # noqa: SIM118
    left = s3.keys() + s3.uploads()
    assert left, "the kill came too late to leave anything"
    subprocess.run(cmd, env=s3.env(), check=True, timeout=120)
    archives = [key for key in s3.keys() if key.endswith(".zip")]  # noqa: SIM118
    assert len(archives) == 1 and s3.keys() == archives and s3.uploads() == []


def test_publish_never_replaces_an_object(s3: Bucket) -> None:
    location = S3Location(S3Prefix(s3.name, s3.prefix))
    name = "K1_backup_20260101_000000.zip"
    s3.put(name, b"the archive that was there first")
    with location.new_archive(name) as pending:
        write_pending(pending, b"x" * 1000)
        with pytest.raises(FileExistsError):
            location.publish(pending, name)
    assert s3.read(name) == b"the archive that was there first"
    assert s3.keys() == [name] and s3.uploads() == []  # the temporary object is gone


def test_an_object_replaced_under_a_reader_is_an_error_not_a_mix(s3: Bucket) -> None:
    s3.put("a.zip", bytes(range(256)) * (12 << 12))  # 12 MiB: more than one block
    reader = S3Object(ObjectPath(s3.name, s3.key("a.zip")))
    assert reader.pread(4, 0) == bytes(range(4))
    s3.put("a.zip", b"\xff" * (12 << 20))
    with pytest.raises(IntegrityError, match="changed while it was read"):
        reader.pread(4, 11 << 20)  # a block not read yet


def _scans(root: Path, count: int, size: int, seed: int) -> Path:
    """A projects root with one project of incompressible files (uploads of many parts)."""
    rng = random.Random(seed)
    for i in range(count):
        path = root / "K9" / f"scan_{i:02d}.pdf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))
    return root


def test_a_connection_dropped_mid_upload_is_retried_and_the_archive_is_whole(
    cli: CliCall, tmp_path: Path, s3: Bucket, dropping_proxy: DroppingProxy
) -> None:
    projects = _scans(tmp_path / "projects", 6, 4 << 20, seed=7)
    dropping_proxy.drop_after(10 << 20)  # while the second 8 MiB part goes up
    made = backup_json(cli, "--all", "--projects-dir", projects, "--output-dir", s3.url)
    assert dropping_proxy.drops == 1
    name = Path(made["archive"]).name
    assert s3.keys() == [name] and s3.uploads() == []
    assert hashlib.sha256(s3.read(name)).hexdigest() == made["archive_sha256"]
    assert _json(cli, "verify", made["archive"])["ok"]


def test_a_server_that_keeps_dropping_the_connection_is_a_network_error_and_no_archive(
    cli: CliCall, tmp_path: Path, s3: Bucket, dropping_proxy: DroppingProxy
) -> None:
    projects = _scans(tmp_path / "projects", 6, 4 << 20, seed=8)
    dropping_proxy.drop_after(10 << 20, stay_down=True)
    env = {**s3.env(), "AWS_ENDPOINT_URL_S3": dropping_proxy.endpoint, "AWS_MAX_ATTEMPTS": "2"}
    cmd = [sys.executable, "-m", "fda_vault", "backup", "--all", "--projects-dir",
           str(projects), "--output-dir", s3.url, "--json"]  # fmt: skip
    failed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1, (failed.stdout, failed.stderr)
    assert json.loads(failed.stdout)["error"]["reason"] == "network"
    line = failed.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert f"s3://{s3.name}/{s3.prefix}/" in line  # names the object it was writing
    assert not [key for key in s3.keys() if key.endswith(".zip")]  # noqa: SIM118
    # The network comes back: the next run takes over the lock the dead run could not
    # release, and cleans up the upload it could not abort.
    dropping_proxy.heal()
    made = backup_json(cli, "--all", "--projects-dir", projects, "--output-dir", s3.url)
    assert s3.keys() == [Path(made["archive"]).name] and s3.uploads() == []


def test_two_backups_racing_on_one_prefix_both_land_under_their_own_names(
    tmp_path: Path, s3: Bucket
) -> None:
    projects = _scans(tmp_path / "projects", 4, 3 << 20, seed=9)
    cmd = [sys.executable, "-m", "fda_vault", "backup", "--all", "--projects-dir",
           str(projects), "--output-dir", s3.url, "--json", "-q"]  # fmt: skip
    racers = [
        subprocess.Popen(cmd, env=s3.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [racer.communicate(timeout=120) for racer in racers]
    assert [racer.returncode for racer in racers] == [0, 0], outputs
    made = [json.loads(out) for out, _err in outputs]
    names = sorted(Path(m["archive"]).name for m in made)
    assert len(set(names)) == 2 and s3.keys() == names and s3.uploads() == []
    for m in made:
        assert hashlib.sha256(s3.read(Path(m["archive"]).name)).hexdigest() == m["archive_sha256"]


def test_readers_running_forward_side_by_side_get_exactly_the_object_bytes(s3: Bucket) -> None:
    data = random.Random(11).randbytes(23 << 20 | 12345)  # not a whole number of blocks
    s3.put("o.bin", data)
    reader = S3Object(ObjectPath(s3.name, s3.key("o.bin")))

    def stretch(start: int, step: int) -> bytes:
        got, offset = [], start
        while offset < min(len(data), start + (9 << 20)):
            got.append(reader.pread(step, offset))
            offset += step
        return b"".join(got)

    starts = [(0, 65536), (7 << 20, 300_001), (15 << 20, 1 << 20)]
    with ThreadPoolExecutor(3) as pool:
        pieces = list(pool.map(lambda a: stretch(*a), starts))
    for (start, _step), piece in zip(starts, pieces, strict=True):
        assert piece == data[start : start + len(piece)] and len(piece) >= 8 << 20
    assert b"".join(reader.read_from(0)) == data
    assert reader.pread(10, len(data) - 4) == data[-4:]


def test_an_object_deleted_under_a_reader_is_an_error_naming_it(s3: Bucket) -> None:
    s3.put("a.zip", bytes(range(256)) * (12 << 12))
    reader = S3Object(ObjectPath(s3.name, s3.key("a.zip")))
    assert reader.pread(4, 0) == bytes(range(4))
    s3.client.delete_object(Bucket=s3.name, Key=s3.key("a.zip"))  # a prune elsewhere
    with pytest.raises(FdaVaultError) as caught:
        reader.pread(4, 11 << 20)
    assert caught.value.what == f"s3://{s3.name}/{s3.key('a.zip')}"


def test_without_boto3_an_s3_location_is_one_line_saying_what_to_install(tmp_path: Path) -> None:
    run = (
        "import sys; sys.modules['boto3'] = None; from fda_vault.entry import main; "
        "sys.argv = ['fda-vault', 'list', '--backups-dir', 's3://acme-fda-backups/x']; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", run], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "s3 extra" in done.stderr and "boto3" in done.stderr


def _lock_note(host: str, age: float) -> bytes:
    return json.dumps({"host": host, "pid": 1, "run": "x", "time": time.time() - age}).encode()


def test_a_lock_from_another_host_is_waited_for_and_taken_over_once_silent(
    cli: CliCall, projects_dir: Path, s3: Bucket
) -> None:
    backup = ("backup", "--all", "--projects-dir", projects_dir, "--output-dir", s3.url)
    s3.put(_s3.LOCK_KEY_NAME, _lock_note("build-server", age=5))  # alive: refreshed lately
    held = cli(*backup, "--lock-timeout", "1")
    assert held.exit_code == 1 and "locked by another fda-vault run" in held.stderr
    assert "on host build-server" in held.stderr
    assert s3.keys() == [_s3.LOCK_KEY_NAME]
    s3.put(_s3.LOCK_KEY_NAME, _lock_note("build-server", age=_s3.LOCK_STALE + 60))  # silent
    made = backup_json(cli, *backup[1:], "--lock-timeout", "1")
    assert s3.keys() == [Path(made["archive"]).name]  # taken over, then released


def test_a_range_that_comes_back_short_is_damage(s3: Bucket) -> None:
    s3.put("a.zip", bytes(3 << 20))
    real = s3.client.head_object(Bucket=s3.name, Key=s3.key("a.zip"))
    # A reader told the object is longer than it is (as after a truncation).
    reader = S3Object(ObjectPath(s3.name, s3.key("a.zip")), size=(3 << 20) + 10, etag=real["ETag"])
    with pytest.raises(IntegrityError, match="ended early"):
        reader.pread(100, (3 << 20) - 50)  # the last block comes back 10 bytes short
    with pytest.raises(IntegrityError, match="ended early"):
        reader.pread(5, (3 << 20) + 2)  # a block past the end: none at all


def test_a_missing_bucket_is_never_created(cli: CliCall, projects_dir: Path, s3: Bucket) -> None:
    missing = "fda-vault-absent-bucket"
    result = cli("backup", "--all", "--projects-dir", projects_dir,
                 "--output-dir", f"s3://{missing}/laptop", "--json")  # fmt: skip
    assert (
        result.exit_code == 2 and json.loads(result.stdout)["error"]["reason"] == "no_such_bucket"
    )
    names = [b["Name"] for b in s3.client.list_buckets()["Buckets"]]
    assert missing not in names


class _ReplaceSourceOnce(SilentProgress):
    """Rewrites the source object as soon as the copy has started reading it."""

    def __init__(self, s3: Bucket, key: str) -> None:
        self.s3, self.key, self.done = s3, key, False

    def advance(self, nbytes: int) -> None:
        if not self.done:
            self.done = True
            self.s3.put(self.key, b"\0" * (24 << 20))


def test_a_source_changed_while_copied_is_damage_exit_3_and_nothing_is_published(
    tmp_path: Path, s3: Bucket
) -> None:
    projects = _scans(tmp_path / "projects", 6, 4 << 20, seed=10)  # 24 MiB: 24 blocks
    made = fda_vault.backup(all_projects=True, projects_dir=projects, output_dir=s3.url)
    name = Path(made.archive).name
    usb = tmp_path / "usb"
    result = fda_vault.copy_archives(s3.url, usb, progress=_ReplaceSourceOnce(s3, name))
    (item,) = result.archives
    assert item.status == "failed" and item.reason == "damaged", item
    assert "changed while it was read" in (item.detail or "")
    assert result.exit_code == 3
    assert not [p.name for p in usb.iterdir() if ".zip" in p.name]  # no archive, no .tmp


def _cut_back_archive(fp: Any, settle: Any, rng_seed: int = 11) -> None:
    """Entries written through ``fp``, one of them cut off after it spanned parts."""
    rng = random.Random(rng_seed)
    writer = ZipWriter(fp, settle=settle)
    # The next entry's header then straddles the first part boundary (5 MiB).
    first = rng.randbytes((5 << 20) - 200)
    writer.add_file("projects/p/first.bin", [first], mtime=1.8e9, mode=0o644,
                    size_hint=len(first), level=0)  # fmt: skip
    mark = writer.tell()
    gone = rng.randbytes(12 << 20)
    writer.add_file("projects/p/gone.bin", [gone[: 6 << 20], gone[6 << 20 :]], mtime=1.8e9,
                    mode=0o644, size_hint=len(gone), level=0)  # fmt: skip
    writer.rollback_to(mark)  # its source changed while it was read
    kept = rng.randbytes(7 << 20)
    writer.add_file("projects/p/kept.bin", [kept], mtime=1.8e9, mode=0o644,
                    size_hint=len(kept), level=0)  # fmt: skip
    writer.close()


def test_a_multipart_upload_cut_back_holds_what_a_file_would(s3: Bucket) -> None:
    """The part where the open entry starts stays in memory; parts uploaded after it are
    uploaded again when the entry is cut off: the object equals the file written the
    same way (parts of 5 MiB, the smallest S3 allows)."""
    plain = io.BytesIO()
    _cut_back_archive(plain, None)
    path = S3Prefix(s3.name, s3.prefix).object("cut.zip")
    sink = MultipartSink(path, part_size=5 << 20)
    try:
        _cut_back_archive(sink, sink.settle)
        sink.complete()
    except BaseException:
        sink.abort()
        raise
    stored = s3.read("cut.zip")
    assert stored == plain.getvalue()
    with zipfile.ZipFile(io.BytesIO(stored)) as zf:
        assert zf.namelist() == ["projects/p/first.bin", "projects/p/kept.bin"]
        assert zf.testzip() is None
