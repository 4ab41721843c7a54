"""``schedule install/remove/status``: the nightly ``fda-vault run``, installed for the user.

A systemd user timer where systemd runs the user's services (``Persistent=true``: a run
missed while the machine was off happens at the next boot; a randomized delay; the
service at ``Nice=19`` and idle I/O), else a line in the user's crontab. Both run
``fda-vault run --config FILE --quiet`` with absolute paths.
"""

from __future__ import annotations

import getpass
import re
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from fda_vault._config import xdg_home
from fda_vault._errors import OperationError, UsageError

__all__ = [
    "CRON_MARK",
    "UNIT_NAME",
    "ScheduleResult",
    "ScheduleStatus",
    "cron_line",
    "install",
    "remove",
    "schedule_status",
    "service_unit",
    "timer_unit",
    "unit_dir",
]

UNIT_NAME = "fda-vault"
CRON_MARK = "# fda-vault run (managed by fda-vault schedule)"
Kind = Literal["systemd", "cron"]


class ScheduleResult(BaseModel):
    """What ``schedule install`` or ``remove`` did."""

    kind: Kind
    action: Literal["installed", "removed", "absent"]
    at: str | None = None
    files: list[str] = Field(default_factory=list, description="unit files written or removed")
    cron_line: str | None = None
    notes: list[str] = Field(default_factory=list, description="what to do by hand, if any")


class ScheduleStatus(BaseModel):
    """Where the job is scheduled, when it runs next, and how the last run went."""

    kind: Kind | None = Field(description="None: not scheduled")
    at: str | None = None
    next_run: str | None = Field(default=None, description="ISO 8601, local time")
    last_run: str | None = Field(default=None, description="when the last run started (UTC)")
    last_exit_code: int | None = None
    last_failed_steps: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


def unit_dir() -> Path:
    """``$XDG_CONFIG_HOME/systemd/user`` (default ``~/.config/systemd/user``)."""
    return xdg_home("XDG_CONFIG_HOME", ".config") / "systemd" / "user"


def _command(config_path: Path) -> list[str]:
    """The absolute command line of the job."""
    beside = Path(sys.executable).parent / "fda-vault"
    program = [str(beside)] if beside.exists() else [sys.executable, "-m", "fda_vault"]
    return [*program, "run", "--config", str(config_path), "--quiet"]


def _quoted(words: list[str]) -> str:
    import shlex

    return " ".join(shlex.quote(word) for word in words)


def _check_time(at: str) -> tuple[int, int]:
    found = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", at)
    if not found:
        raise UsageError(f"--at {at}", "not a time of day (HH:MM, 24 h)")
    return int(found.group(1)), int(found.group(2))


def service_unit(config_path: Path) -> str:
    """The ``fda-vault.service`` text."""
    return (
        "[Unit]\n"
        "Description=fda-vault backup job (fda-vault run)\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"ExecStart={_quoted(_command(config_path))}\n"
        "Nice=19\n"
        "IOSchedulingClass=idle\n"
    )


def timer_unit(at: str) -> str:
    """The ``fda-vault.timer`` text: daily at ``at``, caught up after downtime."""
    hour, minute = _check_time(at)
    return (
        "[Unit]\n"
        f"Description=Run fda-vault daily at {hour:02d}:{minute:02d}\n"
        "\n"
        "[Timer]\n"
        f"OnCalendar=*-*-* {hour:02d}:{minute:02d}:00\n"
        "Persistent=true\n"
        "RandomizedDelaySec=15min\n"
        "\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )


def cron_line(config_path: Path, at: str) -> str:
    """The crontab line (the mark at its end lets ``remove`` find it again)."""
    hour, minute = _check_time(at)
    return f"{minute} {hour} * * * {_quoted(_command(config_path))} {CRON_MARK}"


def _tool(name: str) -> str:
    """The absolute path of a system program (OperationError when it is missing)."""
    found = shutil.which(name)
    if found is None:
        raise OperationError(name, "not installed")
    return found


def _systemd_usable() -> bool:
    """True when a user service manager answers (``systemctl --user``)."""
    if shutil.which("systemctl") is None:
        return False
    done = subprocess.run(
        [_tool("systemctl"), "--user", "is-system-running"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() in {"running", "degraded", "starting"}


def _choose(kind: Kind | None) -> Kind:
    if kind is not None:
        return kind
    if _systemd_usable():
        return "systemd"
    if shutil.which("crontab") is not None:
        return "cron"
    raise UsageError(
        "schedule", "neither a systemd user manager nor crontab is here: run `fda-vault run` "
        "from your own scheduler",
    )  # fmt: skip


def _linger_note() -> str | None:
    """Whether the timer runs while the user is logged out (``loginctl enable-linger``)."""
    user = getpass.getuser()
    if shutil.which("loginctl") is None:
        return (
            f"loginctl is not installed, so lingering for {user} is unknown: without it a "
            f"user timer runs only while you are logged in (`loginctl enable-linger {user}`)"
        )
    done = subprocess.run(
        [_tool("loginctl"), "show-user", user, "--property=Linger"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    answer = done.stdout.strip()
    if answer == "Linger=yes":
        return None
    if answer == "Linger=no":
        return (
            f"lingering is off for {user}: the timer runs only while you are logged in; "
            f"`loginctl enable-linger {user}` lets it run at night with nobody logged in"
        )
    said = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit {done.returncode}"]
    return (
        f"could not tell whether lingering is on for {user} (loginctl: {said[0]}); without "
        f"it the timer runs only while you are logged in: `loginctl enable-linger {user}`"
    )


def _systemctl(*args: str) -> str | None:
    """Run ``systemctl --user ARGS``; the error line if it fails (None: it worked)."""
    if shutil.which("systemctl") is None:
        return "systemctl is not installed"
    done = subprocess.run(
        [_tool("systemctl"), "--user", *args], capture_output=True, text=True, check=False
    )
    if done.returncode == 0:
        return None
    said = (done.stderr or done.stdout).strip().splitlines()
    return said[-1] if said else f"exit {done.returncode}"


def install(config_path: Path, *, at: str = "02:30", kind: Kind | None = None) -> ScheduleResult:
    """Schedule ``fda-vault run --config config_path`` daily at ``at`` (local time)."""
    _check_time(at)
    if not config_path.is_file():
        raise UsageError(config_path, "no config file (`fda-vault config init` writes one)",
                         reason="not_found")  # fmt: skip
    chosen = _choose(kind)
    if chosen == "cron":
        line = cron_line(config_path, at)
        lines = [entry for entry in _read_crontab() if CRON_MARK not in entry]
        _write_crontab([*lines, line])
        return ScheduleResult(kind="cron", action="installed", at=at, cron_line=line)
    folder = unit_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        service, timer = folder / f"{UNIT_NAME}.service", folder / f"{UNIT_NAME}.timer"
        service.write_text(service_unit(config_path), encoding="utf-8")
        timer.write_text(timer_unit(at), encoding="utf-8")
    except OSError as exc:
        raise OperationError(folder, f"cannot write the units ({exc.strerror})") from None
    notes = []
    for step in (("daemon-reload",), ("enable", "--now", f"{UNIT_NAME}.timer")):
        failed = _systemctl(*step)
        if failed:
            notes.append(f"`systemctl --user {' '.join(step)}` failed ({failed}): run it yourself")
            break
    linger = _linger_note()
    if linger:
        notes.append(linger)
    return ScheduleResult(
        kind="systemd", action="installed", at=at, files=[str(service), str(timer)], notes=notes
    )


def remove(kind: Kind | None = None) -> ScheduleResult:
    """Remove the schedule (the units, or the crontab line)."""
    folder = unit_dir()
    service, timer = folder / f"{UNIT_NAME}.service", folder / f"{UNIT_NAME}.timer"
    if kind == "systemd" or (kind is None and timer.exists()):
        if not timer.exists() and not service.exists():
            return ScheduleResult(kind="systemd", action="absent")
        notes = []
        failed = _systemctl("disable", "--now", f"{UNIT_NAME}.timer")
        removed = []
        for unit in (timer, service):
            if unit.exists():
                unit.unlink()
                removed.append(str(unit))
        if failed is None:
            _systemctl("daemon-reload")
        else:
            notes.append(f"`systemctl --user disable --now {UNIT_NAME}.timer` failed ({failed})")
        return ScheduleResult(kind="systemd", action="removed", files=removed, notes=notes)
    if shutil.which("crontab") is None:
        return ScheduleResult(kind="cron", action="absent")
    lines = _read_crontab()
    kept = [entry for entry in lines if CRON_MARK not in entry]
    if kept == lines:
        return ScheduleResult(kind="cron", action="absent")
    _write_crontab(kept)
    return ScheduleResult(kind="cron", action="removed")


def schedule_status(config_path: Path) -> ScheduleStatus:
    """Where and when the job runs, and the last run's result."""
    from fda_vault._run import last_run

    timer = unit_dir() / f"{UNIT_NAME}.timer"
    status = ScheduleStatus(kind=None)
    if timer.exists():
        found = re.search(r"^OnCalendar=\*-\*-\* (\d\d:\d\d):00$", timer.read_text("utf-8"), re.M)
        status.kind, status.at = "systemd", found.group(1) if found else None
    elif shutil.which("crontab") is not None:
        for entry in _read_crontab():
            if CRON_MARK in entry:
                cron_minute, cron_hour = entry.split()[:2]
                status.kind, status.at = "cron", f"{int(cron_hour):02d}:{int(cron_minute):02d}"
    if status.at is not None:
        hour, minute = _check_time(status.at)
        now = datetime.now().astimezone()
        upcoming = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if upcoming <= now:
            upcoming += timedelta(days=1)
        status.next_run = upcoming.isoformat(timespec="minutes")
    last = last_run(config_path)
    if last is not None:
        status.last_run, status.last_exit_code = last.started, last.exit_code
        status.last_failed_steps = [f"{s.step} {s.location}" for s in last.failed]
    elif status.kind is not None:
        status.notes.append("no run recorded yet for this config")
    return status


def _read_crontab() -> list[str]:
    done = subprocess.run([_tool("crontab"), "-l"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        if "no crontab" in done.stderr.lower():
            return []
        raise OperationError("crontab -l", done.stderr.strip() or f"exit {done.returncode}")
    return done.stdout.splitlines()


def _write_crontab(lines: list[str]) -> None:
    text = "".join(f"{line}\n" for line in lines)
    done = subprocess.run(
        [_tool("crontab"), "-"], input=text, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise OperationError("crontab -", done.stderr.strip() or f"exit {done.returncode}")
