"""Unattended operation: the config file, ``run``, alerts, pings, ``status``, ``schedule``.

Real parts only: an SMTP server (aiosmtpd) and an HTTP server (stdlib) on loopback
receive the alerts and pings, S3 is moto or SeaweedFS, the units go through
``systemd-analyze verify`` and the crontab through the real ``crontab``.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from fda_vault._jobconfig import load_config, render_config_schema, template
from tests.conftest import CliCall, FrozenClock
from tests.s3servers import Bucket

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Mailbox:
    """What the SMTP server received: (recipients, parsed message)."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Any]] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    from aiosmtpd.controller import Controller

    box, port = Mailbox(), _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def pings() -> Iterator[tuple[list[str], str]]:
    """A healthchecks-style endpoint: the paths it was asked for, in order, and its URL."""
    heard: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            heard.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield heard, f"http://127.0.0.1:{server.server_address[1]}/ping/3f0c"
    server.shutdown()
    server.server_close()


def _config(path: Path, root: Path, *destinations: str, **top: Any) -> Path:
    lines = [f'projects_dir = "{root}"']
    for key, value in top.items():
        lines.append(f"{key} = {json.dumps(value)}")
    lines.extend(destinations)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _dest(location: str | Path, keep: str = "") -> str:
    return f'\n[[destination]]\nlocation = "{location}"\n' + (
        f"keep = {{ {keep} }}\n" if keep else ""
    )


def _run(cli: CliCall, config: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    result = cli("run", "--config", config, "--json", *args)
    return result.exit_code, json.loads(result.stdout), result.stderr


def _archives(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.zip"))


# --- the config file -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "line", "says"),
    [
        ('level = 6\nlevle = 5\n[[destination]]\nlocation = "/b"\n', 2, "levle: unknown key"),
        ('level = "six"\n[[destination]]\nlocation = "/b"\n', 1, "level: Input should be"),
        ('ping_url = "ftp://x"\n[[destination]]\nlocation = "/b"\n', 1, "not an http(s)://"),
        ('notify = ["just words"]\n[[destination]]\nlocation = "/b"\n', 1, "not an Apprise URL"),
        ('[[destination]]\nlocation = "/b"\n\n[[destination]]\nlocation = "/c"\n'
         'keep = { daly = 7 }\n', 6, "destination[2].keep.daly: unknown key"),
        ('[[destination]]\nlocation = "s3://Bad_Bucket/x"\n', 2, "not an s3://BUCKET"),
        ("level = 6\nexclude = [\n", 2, "not valid TOML"),
        ("level = 6\n", 1, "destination: Field required"),
        ('[[destination]]\nlocation = "/b"\nkeep = { within = "a fortnight" }\n', 3,
         "destination[1].keep.within: not a duration"),
    ],
)  # fmt: skip
def test_config_errors_name_the_file_line_and_key(
    cli: CliCall, tmp_path: Path, body: str, line: int, says: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(body, encoding="utf-8")
    result = cli("config", "check", "--config", config)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert f"{config}: line {line}" in result.stderr and says in result.stderr, result.stderr


def test_a_missing_config_says_how_to_make_one(cli: CliCall, tmp_path: Path) -> None:
    result = cli("run", "--config", tmp_path / "nowhere.toml")
    assert result.exit_code == 2 and "config init" in result.stderr


def test_config_init_writes_a_template_that_checks_and_is_never_overwritten(
    cli: CliCall, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    made = cli("config", "init")
    assert made.exit_code == 0, made.stderr
    path = tmp_path / "xdg" / "fda-vault" / "config.toml"
    assert path.read_text(encoding="utf-8") == template()
    checked = cli("config", "check", "--json")
    assert checked.exit_code == 0, checked.stderr
    settings = json.loads(checked.stdout)["settings"]
    assert settings["destination"][0]["keep"]["daily"] == 7
    assert settings["notify_on"] == ["failure"]
    again = cli("config", "init")
    assert again.exit_code == 2 and "never overwritten" in again.stderr


def test_config_check_masks_passwords_and_tokens(cli: CliCall, tmp_path: Path) -> None:
    config = _config(
        tmp_path / "c.toml", tmp_path, _dest(tmp_path / "b"),
        notify=["mailtos://alice:hunter2@smtp.example.com?to=qa@example.com"],
        ping_url="https://hc-ping.com/5f2e-secret-uuid",
    )  # fmt: skip
    checked = cli("config", "check", "--config", config)
    assert checked.exit_code == 0, checked.stderr
    assert "hunter2" not in checked.stdout and "secret-uuid" not in checked.stdout
    assert "mailtos://alice:****@smtp.example.com" in checked.stdout


def test_the_committed_config_schema_is_current() -> None:
    committed = (REPO / "docs" / "config.schema.json").read_text(encoding="utf-8")
    assert committed == render_config_schema(), "docs/config.schema.json is stale: make docs"
    schema = json.loads(committed)
    assert schema["additionalProperties"] is False  # unknown keys are errors
    assert set(schema["required"]) == {"destination"}


# --- run -------------------------------------------------------------------------------


def test_run_backs_up_copies_and_prunes_each_destination_by_its_policy(
    cli: CliCall, projects_dir: Path, tmp_path: Path, s3: Bucket, frozen_clock: FrozenClock
) -> None:
    local = tmp_path / "backups"
    config = _config(
        tmp_path / "c.toml", projects_dir, _dest(local, "last = 2"), _dest(s3.url, "last = 1")
    )
    for day in (1, 2, 3):
        frozen_clock.set(2026, 5, day, 2, 30, 0)
        code, result, stderr = _run(cli, config)
        assert code == 0, (stderr, result)
    assert [s["step"] for s in result["steps"]] == ["backup", "verify", "copy", "prune", "prune"]
    assert _archives(local) == [
        "all_projects_backup_20260502_023000.zip", "all_projects_backup_20260503_023000.zip"
    ]  # fmt: skip
    assert [k for k in s3.keys(with_trail=False) if k.endswith(".zip")] == [
        "all_projects_backup_20260503_023000.zip"
    ]
    events = json.loads(cli("log", local, "--json").stdout)["events"]
    assert {"backup", "verify", "copy", "prune"} <= {e["command"] for e in events}
    assert all("via run" in e["args"] for e in events if e["command"] != "audit-trail-start")


def test_an_unreachable_destination_stops_only_its_own_steps_and_the_alert_says_which(
    cli: CliCall,
    projects_dir: Path,
    tmp_path: Path,
    smtp: tuple[Mailbox, int],
    pings: tuple[list[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    box, port = smtp
    heard, ping_url = pings
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{_free_port()}")  # nobody
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    local, usb = tmp_path / "backups", tmp_path / "usb"
    config = _config(
        tmp_path / "c.toml", projects_dir,
        _dest(local, "last = 5"), _dest("s3://offsite-bucket/laptop-1", "daily = 30"),
        _dest(usb, "last = 5"),
        notify=[f"mailto://127.0.0.1:{port}?from=fda-vault@example.com&to=qa@example.com"
                "&mode=insecure"],
        ping_url=ping_url,
    )  # fmt: skip
    code, result, stderr = _run(cli, config)
    assert code == 1, result
    status = {(s["step"], s["location"]): s["status"] for s in result["steps"]}
    assert status[("copy", str(usb))] == "ok" and _archives(usb) == _archives(local)
    assert status[("copy", "s3://offsite-bucket/laptop-1")] == "failed"
    assert status[("prune", "s3://offsite-bucket/laptop-1")] == "skipped"
    assert status[("prune", str(usb))] == "ok"
    assert "error: copy s3://offsite-bucket/laptop-1:" in stderr
    assert heard == ["/ping/3f0c/start", "/ping/3f0c/fail"]
    ((recipients, mail),) = box.messages
    assert recipients == ["qa@example.com"]
    assert "FAILED" in mail["Subject"] and "copy s3://offsite-bucket/laptop-1" in mail["Subject"]
    parts = {part.get_content_type(): part for part in mail.walk()}
    body = parts["text/plain"].get_payload(decode=True).decode()
    assert "- copy s3://offsite-bucket/laptop-1: FAILED" in body
    attached = [p for p in mail.walk() if p.get_filename() == "fda-vault-run.json"]
    assert json.loads(attached[0].get_payload(decode=True))["exit_code"] == 1


def test_a_failed_backup_stops_everything_after_it(
    cli: CliCall, projects_dir: Path, tmp_path: Path, pings: tuple[list[str], str]
) -> None:
    heard, ping_url = pings
    config = _config(
        tmp_path / "c.toml", projects_dir, _dest(tmp_path / "b", "last = 1"),
        _dest(tmp_path / "c"), projects=["no_such_project"], ping_url=ping_url,
    )  # fmt: skip
    code, result, _ = _run(cli, config)
    assert code == 2
    assert [(s["step"], s["status"]) for s in result["steps"]] == [
        ("backup", "failed"), ("verify", "skipped"), ("copy", "skipped"), ("prune", "skipped")
    ]  # fmt: skip
    assert heard == ["/ping/3f0c/start", "/ping/3f0c/fail"]


def test_success_pings_and_mails_only_when_asked_and_a_dead_target_is_a_warning(
    cli: CliCall,
    projects_dir: Path,
    tmp_path: Path,
    smtp: tuple[Mailbox, int],
    pings: tuple[list[str], str],
) -> None:
    box, port = smtp
    heard, ping_url = pings
    mail = f"mailto://127.0.0.1:{port}?from=f@example.com&to=qa@example.com&mode=insecure"
    dead = f"mailto://127.0.0.1:{_free_port()}?from=f@example.com&to=x@example.com&mode=insecure"
    config = _config(
        tmp_path / "c.toml", projects_dir, _dest(tmp_path / "b"),
        notify=[mail], ping_url=ping_url,
    )  # fmt: skip
    assert _run(cli, config)[0] == 0
    assert heard == ["/ping/3f0c/start", "/ping/3f0c"] and box.messages == []  # failure only
    config = _config(
        tmp_path / "c.toml", projects_dir, _dest(tmp_path / "b"),
        notify=[dead, mail], notify_on=["failure", "success"],
    )  # fmt: skip
    code, result, stderr = _run(cli, config)
    assert code == 0, result
    assert "notification to mailto://127.0.0.1" in stderr and "not sent" in stderr
    ((_, message),) = box.messages
    assert message["Subject"].startswith("fda-vault run OK on ")


def test_a_second_run_of_the_same_config_fails_clearly(
    cli: CliCall, projects_dir: Path, tmp_path: Path
) -> None:
    from fda_vault._run import _job_lock

    config = _config(tmp_path / "c.toml", projects_dir, _dest(tmp_path / "b"))
    with _job_lock(config, timeout=0):
        result = cli("run", "--config", config)
    assert result.exit_code == 1
    assert "another `fda-vault run` of this config is running" in result.stderr
    assert f"pid {os.getpid()}" in result.stderr
    assert _run(cli, config)[0] == 0  # released
    # --lock-timeout waits for the first run instead (here: one that ends after 1 s).
    held, release = threading.Event(), threading.Event()

    def first_run() -> None:
        with _job_lock(config, timeout=0):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=first_run)
    holder.start()
    held.wait(10)
    threading.Timer(1.0, release.set).start()
    waited = cli("run", "--config", config, "--lock-timeout", "30")
    holder.join()
    assert waited.exit_code == 0, waited.stderr


def test_dry_run_writes_nothing(cli: CliCall, projects_dir: Path, tmp_path: Path) -> None:
    config = _config(
        tmp_path / "c.toml", projects_dir, _dest(tmp_path / "b", "last = 1"), _dest(tmp_path / "c")
    )
    code, result, _ = _run(cli, config, "--dry-run")
    assert code == 0, result
    assert {s["status"] for s in result["steps"]} == {"planned"}
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


# --- status ----------------------------------------------------------------------------


def test_status_is_ok_after_a_good_run_and_says_what_is_wrong_otherwise(
    cli: CliCall, projects_dir: Path, tmp_path: Path
) -> None:
    config = _config(
        tmp_path / "c.toml", projects_dir, _dest(tmp_path / "b"), _dest(tmp_path / "c")
    )
    never = cli("status", "--config", config)
    assert never.exit_code == 1 and "no intact backup" in never.stderr
    assert _run(cli, config)[0] == 0
    assert cli("drill", tmp_path / "b", "--projects-dir", projects_dir).exit_code == 0
    fresh = cli("status", "--config", config, "--json")
    assert fresh.exit_code == 0, fresh.stderr
    shown = json.loads(fresh.stdout)["destinations"]
    assert all(d["newest"] for d in shown)
    assert shown[0]["last_drill"].endswith("Z ok") and shown[1]["last_drill"] is None
    stale = cli("status", "--config", config, "--max-age", "0h")
    assert stale.exit_code == 1
    assert stale.stderr.count("\n") == 1 and "more than 0.0 h" in stale.stderr
    shutil.rmtree(projects_dir)  # the next run's backup fails
    assert _run(cli, config)[0] != 0
    failed = cli("status", "--config", config)
    assert failed.exit_code == 1 and "the last run" in failed.stderr and "backup" in failed.stderr
    assert cli("status", "--config", config, "--max-age", "soon").exit_code == 2


# --- schedule --------------------------------------------------------------------------


def test_systemd_units_pass_systemd_analyze_verify(
    cli: CliCall, projects_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    config = _config(tmp_path / "c.toml", projects_dir, _dest(tmp_path / "b"))
    installed = cli(
        "schedule", "install", "--config", config, "--systemd", "--at", "03:15", "--json"
    )
    assert installed.exit_code == 0, installed.stderr
    assert f"loginctl enable-linger {getpass.getuser()}" in installed.stderr  # said, or checked
    units = tmp_path / "xdg" / "systemd" / "user"
    service, timer = units / "fda-vault.service", units / "fda-vault.timer"
    text = service.read_text(encoding="utf-8")
    assert f"--config {config}" in text and "Nice=19" in text and "IOSchedulingClass=idle" in text
    assert "OnCalendar=*-*-* 03:15:00" in timer.read_text(encoding="utf-8")
    assert "Persistent=true" in timer.read_text(encoding="utf-8")
    analyze = shutil.which("systemd-analyze") or "systemd-analyze"
    checked = subprocess.run(
        [analyze, "verify", "--man=no", str(service), str(timer)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    shown = json.loads(cli("schedule", "status", "--config", config, "--json").stdout)
    assert (shown["kind"], shown["at"]) == ("systemd", "03:15") and shown["next_run"]
    removed = cli("schedule", "remove", "--systemd")
    assert removed.exit_code == 0 and not timer.exists() and not service.exists()
    assert json.loads(cli("schedule", "status", "--json").stdout)["kind"] is None
    bad = cli("schedule", "install", "--config", config, "--systemd", "--at", "25:00")
    assert bad.exit_code == 2 and "--at 25:00" in bad.stderr


@pytest.fixture
def own_crontab() -> Iterator[None]:
    """The real crontab of the user running the tests, emptied for the test and put back
    exactly as it was after it."""
    crontab = shutil.which("crontab") or "crontab"
    before = subprocess.run([crontab, "-l"], capture_output=True, text=True, check=False)
    subprocess.run([crontab, "-r"], capture_output=True, check=False)
    yield
    if before.returncode == 0:
        subprocess.run([crontab, "-"], input=before.stdout, text=True, check=True)
    else:
        subprocess.run([crontab, "-r"], capture_output=True, check=False)


def test_the_cron_path_with_the_real_crontab(
    cli: CliCall, projects_dir: Path, tmp_path: Path, own_crontab: None
) -> None:
    crontab = shutil.which("crontab") or "crontab"
    subprocess.run([crontab, "-"], input="MAILTO=qa@example.com\n", text=True, check=True)
    config = _config(tmp_path / "c.toml", projects_dir, _dest(tmp_path / "b"))
    for at in ("02:30", "04:05"):  # installing again replaces the line
        done = cli("schedule", "install", "--config", config, "--cron", "--at", at)
        assert done.exit_code == 0, done.stderr
    lines = subprocess.run([crontab, "-l"], capture_output=True, text=True, check=True).stdout
    managed = [line for line in lines.splitlines() if "fda-vault schedule" in line]
    assert len(managed) == 1 and managed[0].startswith("5 4 * * * ")
    assert f"run --config {config} --quiet" in managed[0]
    assert "MAILTO=qa@example.com" in lines  # the user's own lines stay
    shown = json.loads(cli("schedule", "status", "--config", config, "--json").stdout)
    assert (shown["kind"], shown["at"]) == ("cron", "04:05")
    # The line runs as cron would run it: sh, a bare PATH.
    command = managed[0].split(" ", 5)[5]
    ran = subprocess.run(
        ["/bin/sh", "-c", command], env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ran.returncode == 0 and ran.stdout == "", ran.stderr
    assert len(_archives(tmp_path / "b")) == 1
    assert cli("schedule", "remove", "--cron").exit_code == 0
    left = subprocess.run([crontab, "-l"], capture_output=True, text=True, check=True).stdout
    assert "fda-vault" not in left and "MAILTO=qa@example.com" in left


def test_load_config_reads_the_issue_example(tmp_path: Path) -> None:
    """The key names of the issue are the contract."""
    path = tmp_path / "config.toml"
    path.write_text(
        'projects_dir = "~/fda-510k-data/projects"\nprojects = []\n'
        'exclude = ["*.tmp", "guidance_cache/"]\nlevel = 6\nencrypt_to = []\nsign_key = ""\n'
        'notify = ["mailto://user:pass@example.com"]\nnotify_on = ["failure"]\nping_url = ""\n'
        '[[destination]]\nlocation = "~/fda-510k-data/projects/backups"\n'
        "keep = { last = 3, daily = 7, weekly = 4, monthly = 12 }\n"
        '[[destination]]\nlocation = "s3://acme-fda-backups/laptop-1"\n'
        "keep = { daily = 30, monthly = 24 }\nobject_lock_days = 365\n",
        encoding="utf-8",
    )
    config = load_config(path)
    assert [d.location for d in config.destination][1] == "s3://acme-fda-backups/laptop-1"
    assert config.destination[1].object_lock_days == 365


def test_flags_override_the_file(cli: CliCall, projects_dir: Path, tmp_path: Path) -> None:
    config = _config(tmp_path / "c.toml", tmp_path / "not-here", _dest(tmp_path / "b"))
    assert _run(cli, config)[0] == 2  # the file's projects folder does not exist
    code, result, _ = _run(cli, config, "--projects-dir", str(projects_dir))
    assert code == 0, result
    assert cli("status", "--config", config, "--projects-dir", projects_dir).exit_code == 0


def test_a_key_file_that_is_gone_fails_the_backup_step_and_is_alerted(
    cli: CliCall, projects_dir: Path, tmp_path: Path, pings: tuple[list[str], str]
) -> None:
    heard, ping_url = pings
    config = _config(
        tmp_path / "c.toml", projects_dir, _dest(tmp_path / "b"),
        sign_key=str(tmp_path / "moved-away.key"), ping_url=ping_url,
    )  # fmt: skip
    code, result, stderr = _run(cli, config)
    assert code != 0
    assert (result["steps"][0]["step"], result["steps"][0]["status"]) == ("backup", "failed")
    assert "moved-away.key" in stderr
    assert heard == ["/ping/3f0c/start", "/ping/3f0c/fail"]
