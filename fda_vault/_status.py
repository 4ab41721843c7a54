"""``fda-vault status``: is the job alive? For monitoring (Nagios, Zabbix) and humans.

For each destination of the config: its newest intact backup and that backup's age, the
last drill recorded in its audit trail; and the last run's result. Not OK (exit 1) when
a destination's newest intact backup is older than ``--max-age`` (or there is none), or
when the last run failed.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from pydantic import BaseModel, Field

from fda_vault._crypto import NO_KEYS, Keys
from fda_vault._errors import FdaVaultError, UsageError
from fda_vault._jobconfig import JobConfig

__all__ = ["DestinationStatus", "JobStatus", "job_status", "parse_age"]


class DestinationStatus(BaseModel):
    """One destination's state."""

    location: str
    newest: str | None = Field(default=None, description="the newest intact archive")
    newest_created: str | None = None
    age_hours: float | None = None
    archives: int = 0
    last_drill: str | None = Field(default=None, description="time and outcome, from the trail")
    problem: str | None = Field(default=None, description="why this destination is not OK")


class JobStatus(BaseModel):
    """The job's state: OK, or the problems, one line each."""

    config: str
    max_age_hours: float
    ok: bool
    last_run: str | None = Field(default=None, description="when the last run started (UTC)")
    last_run_exit_code: int | None = None
    last_run_failed: list[str] = Field(default_factory=list, description="its failed steps")
    destinations: list[DestinationStatus]
    problems: list[str]


def parse_age(text: str, now: datetime | None = None) -> timedelta:
    """``--max-age``, in the grammar of ``prune --keep-within`` (``26h``, ``2d``, ``1m`` a
    month, ``1y6m``), as the span back from ``now``; a UsageError otherwise."""
    from fda_vault._prune import parse_duration

    moment = now or datetime.now(timezone.utc)
    start = parse_duration(text, "--max-age").before(moment)
    if start is None:
        raise UsageError(f"--max-age {text!r}", "reaches back before the year 1")
    return moment - start


def job_status(
    config: JobConfig, config_path: Path, *, max_age: timedelta, keys: Keys = NO_KEYS
) -> JobStatus:
    """The state of each destination and of the last run (see the module's text)."""
    from fda_vault._audit import read_log
    from fda_vault._catalog import list_backups
    from fda_vault._run import last_run
    from fda_vault._storage import open_location

    now = datetime.now(timezone.utc)
    problems: list[str] = []
    destinations = []
    for dest in config.destination:
        where = dest.resolved()
        state = DestinationStatus(location=str(where))
        try:
            listing = list_backups(where, keys=keys)
            intact = [b for b in listing.backups if b.error is None and b.created]
            state.archives = len(listing.backups)
            if intact:
                newest = intact[0]  # newest first
                created = datetime.fromisoformat(str(newest.created))
                state.newest, state.newest_created = newest.file, str(newest.created)
                state.age_hours = round((now - created).total_seconds() / 3600, 1)
                if now - created > max_age:
                    state.problem = (
                        f"newest intact backup {newest.file} is {_age(now - created)} old "
                        f"(more than {_age(max_age)})"
                    )
            else:
                state.problem = "no intact backup"
            drills = [e for e in read_log(open_location(where)).events if e.command == "drill"]
            if drills:
                state.last_drill = f"{drills[0].time[:19]}Z {drills[0].outcome}"
        except FdaVaultError as exc:
            state.problem = f"cannot be read: {exc.message}"
        if state.problem:
            problems.append(f"{where}: {state.problem}")
        destinations.append(state)
    last = last_run(config_path)
    if last is not None and last.exit_code:
        first = last.failed[0] if last.failed else None
        what = f"{first.step} {first.location}: {first.error}" if first else "a step failed"
        problems.insert(0, f"the last run ({last.started}) failed, exit {last.exit_code}: {what}")
    return JobStatus(
        config=str(config_path),
        max_age_hours=max_age.total_seconds() / 3600,
        ok=not problems,
        last_run=last.started if last else None,
        last_run_exit_code=last.exit_code if last else None,
        last_run_failed=[f"{s.step} {s.location}" for s in last.failed] if last else [],
        destinations=destinations,
        problems=problems,
    )


def _age(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} h"
