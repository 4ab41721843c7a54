"""The audit trail: one hash-chained event per operation, anchored in the archives.

Concurrent writers are real processes, the kill is a real SIGKILL, tampering edits the
real trail file, and every check runs through ``fda-vault log --verify``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from fda_vault._audit import (
    TRAIL_NAME,
    LocalTrail,
    check_trail,
    event_draft,
    parse_event,
)
from fda_vault._storage import BackupsFolder, open_location
from tests.conftest import CARDIAC, GLUCOSE, ORTHO, CliCall, backup_json
from tests.s3servers import Bucket

_APPENDER = textwrap.dedent(
    """
    import signal, sys
    from fda_vault._audit import event_draft

    # Python ignores SIGXFSZ (to raise EFBIG instead); the kernel's default kills.
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    from fda_vault._storage import open_location

    where, writer, count, pad = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    trail = open_location(where).trail()
    print("ready", flush=True)
    for i in range(count):
        trail.append(event_draft("test", [writer, str(i), "x" * pad], 0, "ok"))
    """
)


def _appenders(where: str, count: int, pad: int = 0, env: dict[str, str] | None = None) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _APPENDER, where, writer, str(count), str(pad)],
            stdout=subprocess.PIPE,
            env=env,
        )
        for writer in ("A", "B")
    ]
    for proc in procs:
        proc.communicate(timeout=300)
        assert proc.returncode == 0


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def test_two_processes_appending_500_events_each_keep_one_intact_chain(tmp_path: Path) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    _appenders(str(folder), 500)
    events = _events(folder / TRAIL_NAME)
    assert len(events) == 1000
    assert [e["seq"] for e in events] == list(range(1, 1001))
    for writer in ("A", "B"):
        assert [int(e["args"][1]) for e in events if e["args"][0] == writer] == list(range(500))
    report = check_trail(BackupsFolder(folder))
    assert report.intact, report.problems
    assert report.events == 1000


def test_two_processes_appending_to_an_object_trail_never_overwrite(s3: Bucket) -> None:
    _appenders(s3.url, 40, env=s3.env())
    report = check_trail(open_location(s3.url))
    assert report.intact, report.problems
    assert report.events == 80
    names = [k for k in s3.keys(with_trail=True) if k.startswith("fda-vault-audit/")]
    assert names == [f"fda-vault-audit/{n:012d}.json" for n in range(1, 81)]
    writers = [json.loads(s3.read(name))["args"][0] for name in names]
    assert writers.count("A") == writers.count("B") == 40


@pytest.mark.slow
def test_sigkill_at_any_moment_of_appends_loses_and_rewrites_nothing(
    tmp_path: Path, cli: CliCall
) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    trail = folder / TRAIL_NAME
    torn_seen = 0
    for attempt in range(12):
        # Events of 4 MB: each append is one long write(), which SIGKILL can cut short.
        proc = subprocess.Popen(
            [sys.executable, "-c", _APPENDER, str(folder), f"k{attempt}", "1000", str(4 << 20)],
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        time.sleep(0.05 + 0.03 * attempt)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        before = trail.read_bytes()
        checked = cli("log", str(folder), "--verify", "--json")
        torn = not before.endswith(b"\n")
        if torn:
            torn_seen += 1
            assert checked.exit_code == 3, checked.stdout
            assert "cut short" in checked.stderr
            assert json.loads(checked.stdout)["intact"] is False
        else:
            assert checked.exit_code == 0, checked.stdout
        # The next append keeps every byte that was there: the torn line is sealed, not cut.
        LocalTrail(folder).append(event_draft("test", ["after", str(attempt)], 0, "ok"))
        after = trail.read_bytes()
        assert after.startswith(before)
        sealed = cli("log", str(folder), "--verify", "--json")
        assert sealed.exit_code == 0, sealed.stdout
        assert len(json.loads(sealed.stdout)["warnings"]) == torn_seen
        if torn:
            assert "cut short" in sealed.stderr
            assert parse_event(after.splitlines()[-1]).sealed_torn  # type: ignore[union-attr]
        if torn_seen >= 2:
            break


def test_a_process_killed_inside_its_write_leaves_a_torn_line_sealed_by_the_next(
    tmp_path: Path, cli: CliCall
) -> None:
    """Deterministic: a file-size limit lets the appender's write() through only partly,
    and the kernel then kills it (SIGXFSZ) on the rest, inside the append."""
    import resource

    folder = tmp_path / "backups"
    folder.mkdir()
    LocalTrail(folder).append(event_draft("test", ["before"], 0, "ok"))
    trail = folder / TRAIL_NAME
    limit = trail.stat().st_size + 3000  # the next event is ~100 kB: cut after 3000 bytes

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    proc = subprocess.run(
        [sys.executable, "-c", _APPENDER, str(folder), "cut", "1", str(100_000)],
        preexec_fn=limited, capture_output=True, check=False,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGXFSZ
    assert trail.stat().st_size == limit and not trail.read_bytes().endswith(b"\n")
    checked = cli("log", str(folder), "--verify")
    assert checked.exit_code == 3 and "cut short (3000 bytes)" in checked.stderr
    before = trail.read_bytes()
    LocalTrail(folder).append(event_draft("test", ["after"], 0, "ok"))
    assert trail.read_bytes().startswith(before)  # nothing dropped or rewritten
    sealed = cli("log", str(folder), "--verify", "--json")
    assert sealed.exit_code == 0, sealed.stdout
    assert json.loads(sealed.stdout)["events"] == 3
    assert "line 2: an append cut short (3000 bytes" in sealed.stderr
    events = json.loads(cli("log", str(folder), "--json").stdout)
    assert [e["seq"] for e in events["events"]] == [3, 1] and events["unreadable"] == 1


def test_a_torn_last_line_written_by_hand_is_reported_not_dropped(
    tmp_path: Path, cli: CliCall
) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    trail = LocalTrail(folder)
    for n in range(3):
        trail.append(event_draft("test", [str(n)], 0, "ok"))
    data = (folder / TRAIL_NAME).read_bytes()
    (folder / TRAIL_NAME).write_bytes(data[:-40])  # the last event loses its end
    checked = cli("log", str(folder), "--verify")
    assert checked.exit_code == 3
    assert f"{folder / TRAIL_NAME}: line 3" in checked.stderr
    assert cli("log", str(folder), "--json").exit_code == 0
    listed = json.loads(cli("log", str(folder), "--json").stdout)
    assert [e["seq"] for e in listed["events"]] == [2, 1]
    assert listed["unreadable"] == 0  # the torn tail is not a stored line yet


@pytest.fixture
def history(
    cli: CliCall, projects_dir: Path, backups_dir: Path, frozen_clock: Any
) -> tuple[Path, list[str]]:
    """A backups folder with a real history: backup, verify, backup, restore, prune."""
    common = ["--projects-dir", str(projects_dir)]
    first = backup_json(cli, "--all", *common, "--output-dir", str(backups_dir))["archive"]
    assert cli("verify", first).exit_code == 0
    frozen_clock.set(2026, 3, 15, 1, 0, 0)
    second = backup_json(cli, "--all", *common, "--output-dir", str(backups_dir))["archive"]
    frozen_clock.set(2026, 3, 16, 1, 0, 0)
    third = backup_json(cli, "--all", *common, "--output-dir", str(backups_dir))["archive"]
    restored = cli("restore", second, "--target-dir", str(backups_dir.parent / "r"), "--json")
    assert restored.exit_code == 0, restored.stderr
    return backups_dir, [first, second, third]


def _verify(cli: CliCall, folder: Path) -> tuple[int, dict[str, Any], str]:
    result = cli("log", str(folder), "--verify", "--json")
    return result.exit_code, json.loads(result.stdout), result.stderr


def test_a_real_history_is_recorded_and_verifies(
    history: tuple[Path, list[str]], cli: CliCall
) -> None:
    folder, archives = history
    code, report, _ = _verify(cli, folder)
    assert code == 0, report
    assert report["anchors_checked"] == 3
    listed = json.loads(cli("log", str(folder), "--json").stdout)["events"]
    commands = [e["command"] for e in reversed(listed)]
    assert commands == ["audit-trail-start", "backup", "verify", "backup", "backup", "restore"]
    created = [a for e in listed for a in e["archives"] if a["action"] == "created"]
    assert sorted(a["name"] for a in created) == sorted(Path(a).name for a in archives)
    from fda_vault._storage import sha256_of

    for item in created:
        assert item["sha256"] == sha256_of(folder / item["name"])
    verified = next(e for e in listed if e["command"] == "verify")
    assert verified["archives"][0]["sha256"] == sha256_of(Path(archives[0]))
    assert verified["user"] and verified["host"] and verified["exit_code"] == 0


def test_log_filters_by_project_and_date(history: tuple[Path, list[str]], cli: CliCall) -> None:
    folder, _ = history
    everything = json.loads(cli("log", str(folder), "--json").stdout)["events"]
    assert [e["seq"] for e in everything] == sorted((e["seq"] for e in everything), reverse=True)
    none = json.loads(cli("log", str(folder), "-p", "no_such_project", "--json").stdout)
    assert none["events"] == []
    future = json.loads(cli("log", str(folder), "--since", "2999-01-01", "--json").stdout)
    assert future["events"] == []
    bad = cli("log", str(folder), "--since", "yesterday")
    assert bad.exit_code == 2 and "--since yesterday" in bad.stderr


def test_failures_and_refusals_are_events_too(
    history: tuple[Path, list[str]], cli: CliCall, projects_dir: Path
) -> None:
    folder, archives = history
    changed = next(p for p in (projects_dir / CARDIAC).rglob("*") if p.is_file())
    changed.write_bytes(b"edited since the backup\n")
    refused = cli("restore", archives[0], "--projects-dir", str(projects_dir))
    assert refused.exit_code == 4
    last = json.loads(cli("log", str(folder), "--json").stdout)["events"][0]
    assert (last["command"], last["outcome"], last["exit_code"]) == ("restore", "refused", 4)
    assert last["reason"] == "refused" and "overwrite" in last["error"]
    damaged = Path(archives[2])
    data = bytearray(damaged.read_bytes())
    data[200] ^= 0xFF
    damaged.write_bytes(bytes(data))
    assert cli("verify", damaged).exit_code == 3
    last = json.loads(cli("log", str(folder), "--json").stdout)["events"][0]
    assert (last["outcome"], last["exit_code"], last["reason"]) == ("damaged", 3, "damaged")
    assert last["archives"][0]["action"] == "damaged"


@pytest.mark.parametrize("tamper", ["edit", "delete", "swap"])
def test_editing_removing_or_reordering_an_event_breaks_the_chain(
    history: tuple[Path, list[str]], cli: CliCall, tamper: str
) -> None:
    folder, _ = history
    path = folder / TRAIL_NAME
    lines = path.read_bytes().splitlines(keepends=True)
    if tamper == "edit":  # the verify event: someone makes it look like another user's
        event = json.loads(lines[2])
        event["user"] = "qa-manager"
        lines[2] = json.dumps(event, separators=(",", ":")).encode() + b"\n"
    elif tamper == "delete":
        del lines[2]
    else:
        lines[2], lines[3] = lines[3], lines[2]
    path.write_bytes(b"".join(lines))
    code, report, stderr = _verify(cli, folder)
    assert code == 3
    assert report["problems"][0]["seq"] == 3, report["problems"]
    assert f"{path}: line" in stderr


def test_truncating_the_trail_is_caught_by_the_archives(
    history: tuple[Path, list[str]], cli: CliCall
) -> None:
    folder, _ = history
    path = folder / TRAIL_NAME
    lines = path.read_bytes().splitlines(keepends=True)
    # Drop the last three events (the last backup and the restore): what is left is a
    # perfect chain, but the archive written last recorded a head that is now gone.
    path.write_bytes(b"".join(lines[:3]))
    code, report, stderr = _verify(cli, folder)
    assert code == 3
    assert any("truncated" in p["detail"] for p in report["problems"]), report
    assert "trail was truncated" in stderr or "does not record creating" in stderr


def test_a_self_consistent_forged_trail_is_caught_by_the_archives(
    history: tuple[Path, list[str]], cli: CliCall, tmp_path: Path
) -> None:
    folder, _ = history
    real = _events(folder / TRAIL_NAME)
    forged = LocalTrail(tmp_path)  # a whole new chain, every link correct
    for event in real:
        fields = {k: v for k, v in event.items() if k not in {"seq", "prev", "sealed_torn"}}
        fields["user"] = "someone-else"
        forged.append(fields)
    (folder / TRAIL_NAME).write_bytes((tmp_path / TRAIL_NAME).read_bytes())
    assert check_trail(BackupsFolder(tmp_path)).intact  # the forgery is a valid chain...
    code, report, _ = _verify(cli, folder)
    assert code == 3  # ...that the archives' anchors refuse
    assert len(report["problems"]) == 3
    assert all("rewritten" in p["detail"] or "another trail" in p["detail"]
               for p in report["problems"])  # fmt: skip


def test_copied_archives_keep_their_own_anchor_and_the_copy_is_recorded(
    history: tuple[Path, list[str]], cli: CliCall, tmp_path: Path
) -> None:
    folder, _ = history
    offsite = tmp_path / "offsite"
    assert cli("copy", str(folder), str(offsite)).exit_code == 0
    code, report, _ = _verify(cli, offsite)
    assert code == 0, report
    for trail in (folder, offsite):
        last = json.loads(cli("log", str(trail), "--json").stdout)["events"][0]
        assert last["command"] == "copy"
        assert sorted(a["action"] for a in last["archives"]) == ["copied"] * 3


def test_prune_records_each_archive_and_why(history: tuple[Path, list[str]], cli: CliCall) -> None:
    folder, archives = history
    pruned = cli("prune", "--keep-last", "1", "--backups-dir", str(folder), "--yes")
    assert pruned.exit_code == 0, pruned.stderr
    last = json.loads(cli("log", str(folder), "--json").stdout)["events"][0]
    decisions = {a["name"]: (a["action"], a["detail"]) for a in last["archives"]}
    assert decisions[Path(archives[2]).name] == ("kept", "last 1")
    assert decisions[Path(archives[0]).name][0] == "deleted"
    assert _verify(cli, folder)[0] == 0  # deleted archives leave the trail whole


def test_an_unwritable_trail_is_a_warning_never_a_failed_backup(
    cli: CliCall, projects_dir: Path, backups_dir: Path
) -> None:
    backups_dir.mkdir()
    (backups_dir / TRAIL_NAME).mkdir()  # not a file: every append fails
    result = cli(
        "backup", "--all", "--projects-dir", str(projects_dir), "--output-dir", str(backups_dir)
    )
    assert result.exit_code == 0
    assert "audit trail not written" in result.stderr
    assert len(list(backups_dir.glob("*.zip"))) == 1


def test_an_object_store_trail_is_checked_like_a_file(
    s3: Bucket, cli: CliCall, projects_dir: Path
) -> None:
    made = backup_json(cli, "--all", "--projects-dir", str(projects_dir), "--output-dir", s3.url)
    assert cli("verify", made["archive"]).exit_code == 0
    code, report, _ = _verify_url(cli, s3.url)
    assert code == 0 and report["events"] == 3 and report["anchors_checked"] == 1
    s3.client.delete_object(Bucket=s3.name, Key=s3.key("fda-vault-audit/000000000002.json"))
    code, report, _ = _verify_url(cli, s3.url)
    assert code == 3
    assert report["problems"][0]["seq"] == 2


def _verify_url(cli: CliCall, url: str) -> tuple[int, dict[str, Any], str]:
    result = cli("log", url, "--verify", "--json")
    return result.exit_code, json.loads(result.stdout), result.stderr


def test_the_trail_is_no_archive(history: tuple[Path, list[str]], cli: CliCall) -> None:
    folder, archives = history
    listed = json.loads(cli("list", "--backups-dir", str(folder), "--json").stdout)
    assert len(listed["backups"]) == len(archives)
    assert os.path.exists(folder / TRAIL_NAME)


def _sampled(cli: CliCall, folder: Path, percent: str) -> list[str]:
    result = cli("verify", "--sample", percent, folder, "--json")
    assert result.exit_code == 0, result.stdout
    data = json.loads(result.stdout)
    assert data["sample"]["percent"] == float(percent)
    return [Path(report["archive"]).name for report in data["archives"]]


def test_rolling_verification_goes_round_every_archive_least_recent_first(
    cli: CliCall, projects_dir: Path, backups_dir: Path, frozen_clock: Any
) -> None:
    names = []
    for day in range(5):
        frozen_clock.set(2026, 4, 1 + day, 2, 0, 0)
        made = backup_json(
            cli, "--all", "--projects-dir", projects_dir, "--output-dir", backups_dir,
            "--no-verify",
        )  # fmt: skip
        names.append(Path(made["archive"]).name)
    # Each archive is ~20% of the bytes: --sample 20 takes one (or two) a day.
    seen: list[str] = []
    for _ in range(5):
        seen += _sampled(cli, backups_dir, "20")
        if set(seen) == set(names):
            break
    assert set(seen) == set(names), "five daily runs of 20% did not cover every archive"
    first_round = seen[: len(names)]
    assert sorted(first_round) == sorted(names), "an archive was checked again before all were"
    # Round two starts with the archive checked longest ago.
    last_check = {name: max(i for i, s in enumerate(seen) if s == name) for name in names}
    assert _sampled(cli, backups_dir, "1") == [min(names, key=last_check.__getitem__)]


def test_rolling_verification_reports_damage_and_bad_percentages(
    cli: CliCall, projects_dir: Path, backups_dir: Path
) -> None:
    made = backup_json(cli, "--all", "--projects-dir", projects_dir, "--output-dir", backups_dir)
    data = bytearray(Path(made["archive"]).read_bytes())
    data[100] ^= 0xFF
    Path(made["archive"]).write_bytes(bytes(data))
    damaged = cli("verify", "--sample", "100", backups_dir)
    assert damaged.exit_code == 3
    for bad in ("0", "150"):
        refused = cli("verify", "--sample", bad, backups_dir)
        assert refused.exit_code == 2, bad
        assert refused.stderr.count("\n") == 1 and f"--sample {bad}" in refused.stderr
    assert cli("verify", "--sample", "lots", backups_dir).exit_code == 2  # Typer's parse
    assert cli("verify").exit_code == 2


def test_the_runbooks_chain_check_needs_no_fda_vault(
    history: tuple[Path, list[str]], tmp_path: Path
) -> None:
    """The auditor's script of runbook section 12.1, run on the real trail, then on one
    with an edited event and one with a sealed torn line."""
    from tests.test_runbook import runbook_code

    script = tmp_path / "check_trail.py"
    script.write_text(runbook_code("sealed_torn"), encoding="utf-8")
    folder, _ = history
    trail = folder / TRAIL_NAME

    def check(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-I", str(script), str(path)], capture_output=True, text=True,
            check=False,
        )  # fmt: skip

    intact = check(trail)
    assert intact.returncode == 0, intact.stderr
    head = check_trail(BackupsFolder(folder)).head
    assert intact.stdout.strip() == f"intact: 6 events, head {head}"
    edited = tmp_path / "edited.jsonl"
    edited.write_bytes(trail.read_bytes().replace(b'"command":"verify"', b'"command":"verifx"'))
    broken = check(edited)
    assert broken.returncode != 0 and "line 4: the event before it was altered" in broken.stderr
    torn = tmp_path / "torn"
    torn.mkdir()
    (torn / TRAIL_NAME).write_bytes(trail.read_bytes()[:-30])
    LocalTrail(torn).append(event_draft("test", [], 0, "ok"))
    assert check(torn / TRAIL_NAME).returncode == 0


def test_guard_is_recorded_without_its_commands_arguments(
    cli: CliCall, projects_dir: Path, backups_dir: Path
) -> None:
    result = cli(
        "guard", "--all", "--projects-dir", projects_dir, "--output-dir", backups_dir, "--",
        sys.executable, "-c", "import sys; sys.exit(0)  # --token=s3cr3t",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    raw = (backups_dir / TRAIL_NAME).read_bytes()
    assert b"s3cr3t" not in raw
    event = json.loads(raw.splitlines()[-1])
    assert event["command"] == "guard"
    assert f"command={sys.executable} (+2 arguments)" in event["args"]
    assert [a["action"] for a in event["archives"]][:1] == ["created"]


def test_a_deleted_trail_is_caught_by_the_archives(
    history: tuple[Path, list[str]], cli: CliCall
) -> None:
    folder, _ = history
    (folder / TRAIL_NAME).unlink()
    code, report, _ = _verify(cli, folder)
    assert code == 3 and len(report["problems"]) == 3


def test_a_full_disk_mid_append_takes_its_part_back(tmp_path: Path) -> None:
    """With SIGXFSZ ignored (Python's default), the write fails with EFBIG part way, as
    on a full disk: the append removes its own partial line and says so."""
    import resource

    folder = tmp_path / "backups"
    folder.mkdir()
    LocalTrail(folder).append(event_draft("test", ["before"], 0, "ok"))
    trail = folder / TRAIL_NAME
    before = trail.read_bytes()
    script = _APPENDER.replace("signal.signal(signal.SIGXFSZ, signal.SIG_DFL)", "")

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) + 3000, resource.RLIM_INFINITY))

    proc = subprocess.run(
        [sys.executable, "-c", script, str(folder), "full", "1", str(100_000)],
        preexec_fn=limited, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "cannot append to the audit trail: File too large" in proc.stderr
    assert trail.read_bytes() == before
    assert check_trail(BackupsFolder(folder)).intact


def test_a_dry_run_restore_is_recorded_as_planned(
    history: tuple[Path, list[str]], cli: CliCall, tmp_path: Path
) -> None:
    folder, archives = history
    planned = cli("restore", archives[0], "--target-dir", tmp_path / "t", "--dry-run", "--json")
    assert planned.exit_code == 0, planned.stderr
    last = json.loads(cli("log", folder, "--json").stdout)["events"][0]
    assert last["command"] == "restore"
    assert last["archives"] == [
        {"name": Path(archives[0]).name, "action": "planned", "sha256": None, "bytes": None,
         "detail": None}
    ]  # fmt: skip
    assert sorted(last["projects"]) == sorted([CARDIAC, GLUCOSE, ORTHO])


def test_a_hostile_trail_line_is_refused_without_reading_it_whole(
    tmp_path: Path, cli: CliCall, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line longer than any event (here 3 MiB with the limit lowered to 1 MiB) is one
    bad line: reported, read in bounded pieces, and appending after it still works."""
    import fda_vault._audit as audit

    monkeypatch.setattr(audit, "MAX_EVENT_BYTES", 1 << 20)
    folder = tmp_path / "backups"
    folder.mkdir()
    LocalTrail(folder).append(event_draft("test", ["first"], 0, "ok"))
    with (folder / TRAIL_NAME).open("ab") as fp:
        fp.write(b'{"seq": 2, ' + b"x" * (3 << 20) + b"}\n")
    LocalTrail(folder).append(event_draft("test", ["after"], 0, "ok"))
    entries = list(LocalTrail(folder).entries())
    assert [len(e.raw) < (1 << 20) + 2 for e in entries] == [True, True, True]
    checked = cli("log", str(folder), "--verify", "--json")
    assert checked.exit_code == 3
    assert json.loads(checked.stdout)["problems"][0]["seq"] == 2
    assert json.loads(cli("log", str(folder), "--json").stdout)["unreadable"] == 1


def test_reading_commands_start_no_trail(
    history: tuple[Path, list[str]], cli: CliCall, tmp_path: Path
) -> None:
    """verify and restore add to a trail that exists; in a folder without one (an archive
    carried there by hand) they leave no file behind."""
    _, archives = history
    elsewhere = tmp_path / "usb"
    elsewhere.mkdir()
    carried = elsewhere / Path(archives[0]).name
    carried.write_bytes(Path(archives[0]).read_bytes())
    assert cli("verify", carried).exit_code == 0
    assert cli("restore", carried, "--target-dir", tmp_path / "t", "--dry-run").exit_code == 0
    assert sorted(p.name for p in elsewhere.iterdir()) == [carried.name]


def test_every_summarized_result_class_exists_by_the_name_the_trail_looks_up() -> None:
    import importlib

    from fda_vault._audit import _SUMMARIES

    modules = {
        "GuardResult": "_guard", "BackupResult": "_backup", "VerifyResult": "_verify",
        "RestorePlan": "_restore", "RestoreResult": "_restore", "PruneResult": "_prune",
        "CopyResult": "_copy", "DrillResult": "_drill", "ImportResult": "_importer",
    }  # fmt: skip
    assert set(_SUMMARIES) == set(modules)
    for name, module in modules.items():
        cls = getattr(importlib.import_module(f"fda_vault.{module}"), name)
        assert cls.__name__ == name and not cls.__subclasses__()
