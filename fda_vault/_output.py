"""The only module that talks to the terminal: Rich tables, progress, errors, JSON.

Data goes to stdout, chatter to stderr. ``markup=False`` everywhere so that a file or
project name is never read as Rich markup.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TextIO, cast

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from fda_vault._errors import FdaVaultError, RefusedError
from fda_vault._legacy import FORMAT_FDA_VAULT
from fda_vault._progress import NO_PROGRESS, Progress

if TYPE_CHECKING:  # rendering needs only attribute access; importing them costs start-up
    from rich.progress import ProgressColumn, Task, TaskID

    from fda_vault._audit import AuditLog, TrailReport
    from fda_vault._backup import BackupResult
    from fda_vault._catalog import ArchiveContents, BackupList
    from fda_vault._copy import CopyResult
    from fda_vault._diff import DiffResult
    from fda_vault._drill import DrillResult
    from fda_vault._guard import GuardResult
    from fda_vault._importer import ImportResult
    from fda_vault._keys import GeneratedKey
    from fda_vault._prune import PruneResult
    from fda_vault._restore import RestorePlan, RestoreResult
    from fda_vault._run import RunResult
    from fda_vault._schedule import ScheduleResult, ScheduleStatus
    from fda_vault._signing import GeneratedSigningKey
    from fda_vault._status import JobStatus
    from fda_vault._verify import VerifyResult

__all__ = ["Terminal", "human_bytes"]

_PIPE_WIDTH = 400
_EXAMPLES = 5


def one_line(text: str) -> str:
    """Escape control characters, so a hostile file name cannot split or forge a line."""
    return "".join(f"\\x{ord(ch):02x}" if ord(ch) < 32 or ord(ch) == 127 else ch for ch in text)


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _with_format(text: str, source_format: str) -> str:
    """``text``, followed by the archive's format when it is not fda-vault's own."""
    return text if source_format == FORMAT_FDA_VAULT else f"{text} [{source_format}]"


def _utc_text(timestamp: str | None) -> str:
    """An ISO 8601 time as ``2026-11-26 07:02:07`` in UTC (as given if it does not parse)."""
    if not timestamp:
        return ""
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


class _RichProgress:
    """Adapts the library's Progress callback to a Rich progress bar on stderr.

    The bar is on screen only between ``start`` and ``finish``: whatever is printed
    after a phase (a warning, a summary, the output of guard's command) starts on a
    clean line, never glued to a stale bar.
    """

    def __init__(self, console: Console) -> None:
        # Imported here: ~10 ms of start-up that list and quiet runs never need.
        from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            _binary_speed_column(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> _RichProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish()

    def start(self, description: str, total_bytes: int) -> None:
        self.finish()
        self._bar.start()
        self._task = self._bar.add_task(description, total=total_bytes)

    def advance(self, nbytes: int) -> None:
        if self._task is not None:
            self._bar.advance(self._task, nbytes)

    def finish(self) -> None:
        if self._task is not None:
            self._bar.remove_task(self._task)
            self._task = None
            self._bar.stop()  # transient: the bar's line is cleared


def _binary_speed_column() -> ProgressColumn:
    """Transfer speed in KiB/s, MiB/s: the units of every other figure we print (Rich's
    own column shows MB/s)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class BinarySpeedColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            shown = "?" if speed is None else f"{human_bytes(speed)}/s"
            return Text(shown, style="progress.data.speed")

    return BinarySpeedColumn()


class _TrimmedLines:
    """A text stream for piped output: trailing blanks are cut from every line (Rich
    pads table cells to the column width; cron mail and diffs do not want them)."""

    def __init__(self, stream_name: Literal["stdout", "stderr"]) -> None:
        self._name = stream_name  # looked up at each write: tests swap sys.stdout
        self._pending = ""

    def _stream(self) -> TextIO:
        stream: TextIO = getattr(sys, self._name)
        return stream

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        if lines:
            self._stream().write("".join(line.rstrip(" ") + "\n" for line in lines))
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._stream().write(self._pending)
            self._pending = ""
        self._stream().flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._stream().fileno()

    @property
    def encoding(self) -> str:
        return getattr(self._stream(), "encoding", None) or "utf-8"


class Terminal:
    """Owns stdout and stderr for one command run."""

    def __init__(self, *, as_json: bool = False, quiet: bool = False) -> None:
        self.as_json = as_json
        self.quiet = quiet
        # NO_COLOR asks for plain text: Rich alone would drop colours but keep bold/italic.
        styles: Literal["auto"] | None = None if os.environ.get("NO_COLOR") else "auto"
        self.out = self._console("stdout", styles)
        self.err = self._console("stderr", styles)

    @staticmethod
    def _console(name: Literal["stdout", "stderr"], styles: Literal["auto"] | None) -> Console:
        options: dict[str, Any] = {
            "markup": False, "highlight": False, "emoji": False, "soft_wrap": True,
            "color_system": styles,
        }  # fmt: skip
        console = Console(stderr=name == "stderr", **options)
        if console.is_terminal:
            return console
        # Piped, redirected or in a cron log: never cut a file name to 80 columns, and no
        # trailing blanks. (Console(file=...) decides "terminal" from that file: no longer.)
        trimmed = cast("TextIO", _TrimmedLines(name))
        return Console(file=trimmed, width=_PIPE_WIDTH, **options)

    @property
    def interactive(self) -> bool:
        """True when a human can answer a prompt."""
        return not self.as_json and sys.stdin.isatty() and self.err.is_terminal

    def confirm(self, question: str) -> bool:
        """Ask on the terminal: "y" or "yes" (any case) is yes; anything else, an empty
        line or Ctrl-D is no. Ctrl-C ends the line first, so the error starts on its own."""
        self.err.print(f"{question} [y/N]: ", end="")
        try:
            answer = sys.stdin.readline()
        except KeyboardInterrupt:
            self.err.print()
            raise
        if not answer.endswith("\n"):
            self.err.print()  # Ctrl-D: the next line must not be glued to the question
        return answer.strip().lower() in {"y", "yes"}

    def confirm_or_refuse(
        self, question: str, *, command: str, refused: str, how: str, nothing: str
    ) -> None:
        """Ask ``question`` (restore, prune: after the plan was shown); return on yes.

        Without a terminal to ask (a pipe, cron, ``--json``) or on any other answer, raise
        RefusedError (exit 4): ``refused`` names what would have happened, ``how`` the
        flags that allow it, ``nothing`` what was left untouched."""
        if not self.interactive:
            raise RefusedError(refused, f"no terminal to ask; {how} ({nothing})")
        if not self.confirm(question):
            raise RefusedError(f"{command} cancelled", nothing)

    @contextmanager
    def progress(self) -> Iterator[Progress]:
        """A progress sink: a Rich bar on a terminal, nothing under --json/--quiet/pipes."""
        if self.as_json or self.quiet or not self.err.is_terminal:
            yield NO_PROGRESS
            return
        with _RichProgress(self.err) as bar:
            yield bar

    # --- chatter on stderr -------------------------------------------------
    def error(self, exc: FdaVaultError) -> None:
        """The one error line, plus a JSON error object on stdout under --json."""
        self.error_line(exc)
        if self.as_json:
            self.emit_json(
                {
                    "error": {
                        "kind": exc.kind,
                        "reason": exc.reason,
                        "exit_code": int(exc.exit_code),
                        "message": exc.message,
                        "path": exc.what,
                        "detail": exc.why,
                    }
                }
            )

    def error_line(self, exc: FdaVaultError) -> None:
        """Only the error line on stderr: the command's report was the JSON document."""
        self.err.print(f"error: {one_line(exc.message)}", style="red")

    def warning(self, text: str) -> None:
        """A warning line on stderr (shown even with --quiet)."""
        self.err.print(f"warning: {one_line(text)}", style="yellow")

    def notes(self, notes: list[str]) -> None:
        """What an archive's format does not record: ``note:`` lines on stderr (human only)."""
        for text in notes:
            self.info(f"note: {one_line(text)}")

    def info(self, text: str) -> None:
        """A human note on stderr, hidden by --quiet and --json."""
        if not (self.quiet or self.as_json):
            self.err.print(text)

    # --- data on stdout ----------------------------------------------------
    def emit_json(self, payload: BaseModel | dict[str, Any]) -> None:
        """Exactly one JSON document on stdout."""
        if isinstance(payload, BaseModel):
            text = payload.model_dump_json(indent=2, by_alias=True)
        else:
            text = json.dumps(payload, indent=2)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def _human(self) -> bool:
        return not (self.as_json or self.quiet)

    def restore_plan(self, plan: RestorePlan, *, to_stdout: bool) -> None:
        """Render a restore plan: one line per project, a table per changed project."""
        if self.as_json:
            if to_stdout:
                self.emit_json(plan)
            return
        if not self._human():
            return
        console = self.out if to_stdout else self.err
        title = "Restore plan (dry run: nothing written)" if plan.dry_run else "Restore plan"
        summary = Table(title=f"{title}: {plan.archive} -> {plan.target_dir}")
        for column in ("project", "action", "files", "data"):
            summary.add_column(column, justify="right" if column in {"files", "data"} else "left")
        for project in plan.projects:
            summary.add_row(
                project.name, project.action, str(project.files), human_bytes(project.bytes)
            )
        console.print(summary)
        for project in plan.projects:
            if project.action != "overwrite":
                continue
            table = Table(title=f"{project.name}: changes if restored")
            table.add_column("files")
            table.add_column("count", justify="right")
            table.add_column("data", justify="right")
            table.add_column("examples")
            rows = (
                ("only in backup (added)", project.only_in_backup, project.bytes_only_in_backup),
                ("only on disk (removed)", project.only_on_disk, project.bytes_only_on_disk),
                ("differing (replaced)", project.differing, project.bytes_differing),
            )
            for label, paths, nbytes in rows:
                shown = ", ".join(paths[:_EXAMPLES]) + (" …" if len(paths) > _EXAMPLES else "")
                table.add_row(label, str(len(paths)), human_bytes(nbytes), shown)
            table.add_row(
                "identical", str(project.identical), human_bytes(project.bytes_identical), ""
            )
            console.print(table)
        console.print(
            f"{human_bytes(plan.bytes_to_write)} to write, {human_bytes(plan.free_bytes)} free"
        )
        self.notes(plan.notes)

    def guard_result(self, result: GuardResult) -> None:
        """Report what guard did around the command (on stderr: stdout is the command's)."""
        if self.as_json:
            self.emit_json(result)
            return
        command = " ".join(result.command)
        if result.interrupted:
            done = (
                f"rolled back {', '.join(result.backup.projects)} from {result.backup.archive}"
                if result.rolled_back
                else f"not rolled back (--no-rollback); the backup is {result.backup.archive}"
            )
            self.err.print(
                one_line(f"error: {command!r} — interrupted; its processes were stopped; {done}"),
                style="red",
            )
        elif result.returncode == 0:
            kept = (
                f"backup kept: {result.backup.archive}" if result.backup_kept else "backup removed"
            )
            self.info(f"guard: {command!r} succeeded; {kept}")
        elif result.rolled_back:
            self.warning(
                f"{command!r} failed (exit {result.returncode}); rolled back "
                f"{', '.join(result.backup.projects)} from {result.backup.archive}"
            )
        else:
            self.warning(
                f"{command!r} failed (exit {result.returncode}); not rolled back (--no-rollback); "
                f"the backup is {result.backup.archive}"
            )

    def diff_result(self, result: DiffResult) -> None:
        """Render a diff: a table of every differing file, grouped by project, then counts."""
        if self.as_json:
            self.emit_json(result)
            return
        if not self._human():
            return
        newer = f"the live projects in {result.new}" if result.against_live else result.new
        if result.differences:
            table = Table(title=f"Changes from {result.old} to {newer}")
            table.add_column("project", overflow="fold")
            table.add_column("change", no_wrap=True)
            table.add_column("path", overflow="fold")
            labels = (
                ("added", "added"),
                ("removed", "removed"),
                ("changed", "changed"),
                ("metadata_only", "metadata only"),
            )
            for project in result.projects:
                for field, label in labels:
                    for path in getattr(project, field):
                        table.add_row(project.name, label, path)
            self.out.print(table)
        self.out.print(
            f"{len(result.added)} added, {len(result.removed)} removed, "
            f"{len(result.changed)} changed, {len(result.metadata_only)} metadata only"
            + (" (no differences)" if not result.differences else "")
        )

    def import_result(self, result: ImportResult) -> None:
        """Render each legacy archive imported (or the one error line of each failure)."""
        if self.as_json:
            self.emit_json(result)
            for item in result.archives:
                if item.error:
                    self.err.print(f"error: {one_line(item.error)}", style="red")
            return
        for item in result.archives:
            if item.error:
                self.err.print(f"error: {one_line(item.error)}", style="red")
            elif self._human():
                self.out.print(
                    f"imported {item.source} ({item.source_format}) -> {item.archive}: "
                    f"{item.files} files, {human_bytes(item.bytes)}, verified"
                )

    def generated_key(self, key: GeneratedKey) -> None:
        """Render a new key: its public half (the secret stays in its file)."""
        if self.as_json:
            self.emit_json(key)
            return
        if not self._human():
            return
        self.out.print(f"Public key: {key.public_key}", soft_wrap=True)
        self.out.print(f"Secret key written to {key.identity_file} (mode 0600)", soft_wrap=True)

    def generated_signing_key(self, key: GeneratedSigningKey) -> None:
        """Render a new signing key pair: where each half went."""
        if self.as_json:
            self.emit_json(key)
            return
        if not self._human():
            return
        self.out.print(f"Key id: {key.key_id}")
        self.out.print(f"Public key written to {key.public_key_file}", soft_wrap=True)
        self.out.print(f"Secret key written to {key.secret_key_file} (mode 0600)", soft_wrap=True)

    def copy_result(self, result: CopyResult) -> None:
        """Render a copy: one line per archive copied (or to be), failures on stderr."""
        for item in result.archives:
            if item.status == "failed":
                self.err.print(one_line(f"error: {item.file} — {item.detail}"), style="red")
        if self.as_json:
            self.emit_json(result)
            return
        if not self._human():
            return
        for item in result.archives:
            if item.status in {"copied", "would copy"}:
                self.out.print(f"{item.status} {item.file} ({human_bytes(item.bytes)})")
            elif item.status == "skipped":
                self.out.print(f"skipped {item.file}: {item.detail}")
        present = sum(1 for item in result.archives if item.status == "present")
        count = sum(1 for i in result.archives if i.status in {"copied", "would copy"})
        if count == 0:
            done = "nothing to copy"
        elif result.dry_run:
            done = f"{count} to copy (dry run)"
        else:
            done = (
                f"{count} copied, each verified at the destination "
                f"({human_bytes(result.bytes_copied)})"
            )
        self.out.print(f"{result.source} -> {result.destination}: {done}, {present} already there")

    def drill_result(self, result: DrillResult) -> None:
        """Render a drill: a table of the archives restored, then the no-lock-in check."""
        for item in result.archives:
            for line in item.problems:
                self.err.print(one_line(f"error: {item.archive}: {line}"), style="red")
            for path in item.live_mismatches:
                self.err.print(
                    one_line(
                        f"error: {path}: the live file differs from {item.archive} although "
                        "its size and times did not change (silent damage)"
                    ),
                    style="red",
                )
        if self.as_json:
            self.emit_json(result)
            return
        if not self._human():
            return
        table = Table(title=f"Restore drill of {result.location} ({result.started})")
        for column in ("archive", "result", "restored", "live files checked"):
            table.add_column(column, overflow="fold")
        for item in result.archives:
            status = item.status.upper() if not item.live_mismatches else "LIVE DIFFERS"
            table.add_row(
                item.archive,
                status,
                f"{item.restored_files} files, {human_bytes(item.restored_bytes)}",
                f"{item.live_checked} ({len(item.live_mismatches)} differ)",
            )
        self.out.print(table)
        check = result.no_lock_in
        self.out.print(
            f"without fda-vault: {check.status}"
            + (f" ({check.archive})" if check.archive else "")
            + (f": {check.detail}" if check.detail else "")
        )
        verdict = "every archive restored exactly" if result.ok else "PROBLEMS FOUND"
        self.out.print(f"drill: {verdict} in {result.seconds:.1f} s")

    def config_written(self, path: Path) -> None:
        """Where ``config init`` wrote the template."""
        if self.as_json:
            self.emit_json({"config": str(path)})
        elif self._human():
            self.out.print(f"wrote {path}: edit it, then `fda-vault config check`", soft_wrap=True)

    def config_settings(self, path: Path, settings: dict[str, Any]) -> None:
        """``config check``: the effective settings (as JSON: they are the file's values)."""
        if self.as_json:
            self.emit_json({"config": str(path), "settings": settings})
            return
        if not self._human():
            return
        self.out.print(f"{path}: valid. Effective settings (secrets masked):", soft_wrap=True)
        self.out.print(json.dumps(settings, indent=2), soft_wrap=True, highlight=False)

    def run_result(self, result: RunResult) -> None:
        """``run``: one row per step, then the verdict; failures and warnings on stderr."""
        for step in result.failed:
            self.err.print(
                one_line(f"error: {step.step} {step.location}: {step.error}"), style="red"
            )
        for line in result.warnings:
            self.warning(line)
        if self.as_json:
            self.emit_json(result)
            return
        if not self._human():
            return
        title = "fda-vault run (dry run: nothing written)" if result.dry_run else "fda-vault run"
        table = Table(title=f"{title}: {result.config}")
        for column in ("step", "location", "result", "seconds", "what"):
            table.add_column(column, overflow="fold")
        for step in result.steps:
            table.add_row(
                step.step, step.location, step.status.upper(), f"{step.seconds:.1f}",
                step.error if step.status in {"failed", "skipped"} else step.summary,
            )  # fmt: skip
        self.out.print(table)
        verdict = "OK" if result.exit_code == 0 else f"FAILED (exit {result.exit_code})"
        self.out.print(f"run {verdict} in {result.seconds:.1f} s")

    def job_status(self, status: JobStatus) -> None:
        """``status``: a row per destination; the problems on one line (stderr)."""
        if status.problems:
            self.err.print(one_line("status: NOT OK: " + "; ".join(status.problems)), style="red")
        if self.as_json:
            self.emit_json(status)
            return
        if not self._human():
            return
        table = Table(title=f"Status of {status.config}")
        for column in ("destination", "newest intact backup", "age (h)", "last drill"):
            table.add_column(column, overflow="fold")
        for dest in status.destinations:
            table.add_row(
                dest.location, dest.newest or "-",
                f"{dest.age_hours:.1f}" if dest.age_hours is not None else "-",
                dest.last_drill or "-",
            )  # fmt: skip
        self.out.print(table)
        last = (
            f"last run {status.last_run}: exit {status.last_run_exit_code}"
            if status.last_run
            else "no run recorded"
        )
        self.out.print(f"{last}; {'OK' if status.ok else 'NOT OK'}")

    def schedule_result(self, result: ScheduleResult) -> None:
        """``schedule install/remove``: what was written or removed, what to do by hand."""
        for note in result.notes:
            self.warning(note)
        if self.as_json:
            self.emit_json(result)
            return
        if not self._human():
            return
        if result.action == "absent":
            self.out.print(f"no {result.kind} schedule of fda-vault to remove")
            return
        what = f"daily at {result.at}" if result.at else ""
        self.out.print(f"{result.action} the {result.kind} schedule {what}".rstrip())
        for file in result.files:
            self.out.print(f"  {file}", soft_wrap=True)
        if result.cron_line:
            self.out.print(f"  {result.cron_line}", soft_wrap=True)

    def schedule_status(self, status: ScheduleStatus) -> None:
        """``schedule status``."""
        if self.as_json:
            self.emit_json(status)
            return
        if not self._human():
            return
        if status.kind is None:
            self.out.print("not scheduled: `fda-vault schedule install`")
        else:
            self.out.print(
                f"scheduled by {status.kind} daily at {status.at}; next run {status.next_run}"
            )
        if status.last_run:
            failed = (
                f", failed: {'; '.join(status.last_failed_steps)}"
                if status.last_failed_steps
                else ""
            )
            self.out.print(f"last run {status.last_run}: exit {status.last_exit_code}{failed}")
        for note in status.notes:
            self.info(f"note: {note}")

    def audit_log(self, log: AuditLog) -> None:
        """Render a trail's events, newest first."""
        if self.as_json:
            self.emit_json(log)
            return
        if not self._human():
            return
        if not log.events:
            self.out.print(f"no events in {log.trail}")
        else:
            table = Table(title=f"Audit trail {log.trail}")
            for column in ("#", "time (UTC)", "who", "command", "outcome", "archives"):
                table.add_column(column, overflow="fold")
            for event in log.events:
                outcome: str = event.outcome
                if event.exit_code:
                    outcome += f" ({event.exit_code}, {event.reason or 'no reason'})"
                table.add_row(
                    str(event.seq),
                    event.time[:19].replace("T", " "),
                    f"{event.user}@{event.host}",
                    event.command,
                    outcome,
                    "\n".join(f"{a.action} {a.name}" for a in event.archives),
                )
            self.out.print(table)
        if log.unreadable:
            self.warning(f"{log.unreadable} stored line(s) are not events: run `log --verify`")

    def trail_report(self, report: TrailReport) -> None:
        """Render ``log --verify``: intact, or the problems from the first bad event on."""
        for line in report.warnings:
            self.warning(line)
        if self.as_json:
            self.emit_json(report)
            return
        if not self._human():
            return
        for note in report.notes:
            self.info(f"note: {note}")
        if report.intact:
            head = f", head {report.head[:16]}…" if report.head else ""
            self.out.print(
                f"{report.trail}: intact, {report.events} events{head}; "
                f"{report.anchors_checked} archive(s) agree with it"
            )
            return
        for problem in report.problems:
            seq = f" (event {problem.seq})" if problem.seq is not None else ""
            self.out.print(one_line(f"BROKEN {problem.where}{seq}: {problem.detail}"))

    def restore_result(self, result: RestoreResult) -> None:
        """Render a finished restore."""
        if self.as_json:
            self.emit_json(result)
            return
        if not self._human():
            return
        if result.restored:
            self.out.print(
                f"restored {', '.join(result.restored)} into {result.target_dir}: "
                f"{result.files} files, {human_bytes(result.bytes)} in "
                f"{result.duration_seconds:.2f} s ({human_bytes(result.bytes_per_second)}/s), "
                "every file verified"
            )
        if result.identical:
            self.out.print(f"identical, nothing to do: {', '.join(result.identical)}")
        self.notes(result.notes)

    def backup_result(self, result: BackupResult) -> None:
        """Render a finished backup."""
        # Warnings reach stderr whatever the mode: --quiet and --json silence only the summary.
        for diagnostic in result.warnings:
            self.warning(diagnostic.message)
        if self.as_json:
            self.emit_json(result)
            return
        if not self._human():
            return
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold")
        table.add_column()
        rate = result.bytes / result.duration_seconds if result.duration_seconds else 0.0
        if result.unchanged:
            table.add_row("unchanged", "nothing changed since this backup: no archive written")
        table.add_row("archive", result.archive)
        table.add_row("projects", ", ".join(result.projects))
        table.add_row("files", str(result.files))
        table.add_row("data", f"{human_bytes(result.bytes)} ({result.bytes} bytes)")
        table.add_row(
            "archive size", f"{human_bytes(result.archive_size)} ({result.archive_size} bytes)"
        )
        table.add_row("archive sha256", result.archive_sha256)
        if result.encrypted == "age":
            count = len(result.recipients)
            table.add_row("encrypted", f"age, to {count} recipient{'s' if count != 1 else ''}")
        elif result.encrypted == "gpg":
            table.add_row("encrypted", "OpenPGP AES-256, with the passphrase")
        table.add_row("verified", "yes" if result.verified else "no (--no-verify)")
        if result.reused_files and not result.unchanged:
            table.add_row(
                "reused",
                f"{result.reused_files} unchanged files, {human_bytes(result.reused_bytes)}, "
                f"copied from {result.parent}",
            )
        elif result.full_read:
            table.add_row("reused", f"none: every file read ({result.full_read})")
        if result.excluded_files:
            table.add_row("excluded", f"{result.excluded_files} files")
        if result.skipped:
            table.add_row("skipped", f"{len(result.skipped)} (see warnings)")
        table.add_row("duration", f"{result.duration_seconds:.2f} s ({human_bytes(rate)}/s)")
        self.out.print(table)

    def verify_result(self, result: VerifyResult) -> None:
        """Render verification reports."""
        if self.as_json:
            self.emit_json(result)
            return
        if result.sample is not None:
            info = result.sample
            self.info(
                f"sample: {len(result.archives)} of {info.archives_total} archives, "
                f"{human_bytes(info.bytes_chosen)} of {human_bytes(info.bytes_total)} "
                f"({info.percent:g}% asked); {info.never_checked} never checked before"
            )
        for report in result.archives:
            if report.status == "missing":
                self.err.print(one_line(f"error: {report.archive} — {report.problems[0].detail}"))
                if self._human():
                    self.out.print(f"MISSING {report.archive}")
                continue
            for problem in report.problems:
                # A problem of the whole file is named by the archive alone, not twice.
                same = problem.path == report.archive
                where = f"{report.archive}: " if same else f"{report.archive}: {problem.path}: "
                self.err.print(one_line(f"{where}{problem.kind}: {problem.detail}"))
            if self._human():
                legacy = f" ({report.format})" if report.format != FORMAT_FDA_VAULT else ""
                if report.ok:
                    signed = (
                        f", signed by {report.signed_by}"
                        + ("" if report.signature_checked else " (not checked: no --trusted-key)")
                        if report.signed_by
                        else ""
                    )
                    self.out.print(
                        f"OK {report.archive}: {report.files_checked} files, "
                        f"{human_bytes(report.bytes_checked)} checked{legacy}{signed}"
                    )
                    self.notes(report.notes)
                else:
                    self.out.print(
                        f"DAMAGED {report.archive}: {len(report.problems)} problem(s){legacy}"
                    )

    def backup_list(self, listing: BackupList) -> None:
        """Render the backups folder, newest first: a table where it fits the terminal,
        else one block per backup. A file name is never cut (it is what the user types)."""
        if self.as_json:
            self.emit_json(listing)
            return
        if not self._human():
            return
        if not listing.backups:
            self.out.print(
                f"no backups yet in {listing.backups_dir}; "
                "`fda-vault backup --all` will write them there"
            )
            return
        table = Table(title=f"Backups in {listing.backups_dir}")
        longest = max(len(item.file) for item in listing.backups)
        table.add_column("file", no_wrap=True, min_width=longest)
        # A date and a time on two lines at the narrowest; names folded, never cut.
        table.add_column("created (UTC)", overflow="fold", min_width=10)
        table.add_column("projects", overflow="fold", min_width=16)
        for column in ("files", "data", "archive"):
            table.add_column(column, justify="right", no_wrap=True, min_width=9)
        for item in listing.backups:
            if item.error:
                archive = human_bytes(item.archive_bytes)
                status = "ENCRYPTED" if item.locked else "DAMAGED"
                table.add_row(item.file, status, item.error, "", "", archive)
                continue
            table.add_row(
                item.file,
                _utc_text(item.created),
                _with_format(", ".join(item.projects), item.format),
                str(item.files),
                human_bytes(item.data_bytes),
                human_bytes(item.archive_bytes),
            )
        # Every column at its narrowest (names and dates folded), with its borders and
        # padding (3 columns each, and one more), must fit; else the blocks below.
        narrowest = sum(column.min_width or 0 for column in table.columns)
        if narrowest + 3 * len(table.columns) + 1 <= self.out.width:
            self.out.print(table)
            return
        self.out.print(f"Backups in {listing.backups_dir}")
        for item in listing.backups:
            self.out.print(item.file)
            if item.error:
                details = [f"{'ENCRYPTED' if item.locked else 'DAMAGED'}: {item.error}"]
            else:
                details = [
                    f"{_utc_text(item.created)} UTC, {item.files} files, "
                    f"{human_bytes(item.data_bytes)} data, "
                    f"{human_bytes(item.archive_bytes)} archive",
                    _with_format(", ".join(item.projects), item.format),
                ]
            for line in details:  # wrapped at words (a name is never split), indented
                for piece in textwrap.wrap(
                    line, max(self.out.width - 2, 20), break_long_words=False
                ):
                    self.out.print(f"  {piece}")

    def archive_contents(self, contents: ArchiveContents) -> None:
        """Render one archive's projects (and files with --files)."""
        if self.as_json:
            self.emit_json(contents)
            return
        if not self._human():
            return
        shown_format = (
            contents.format
            if contents.format != FORMAT_FDA_VAULT
            else f"format {contents.backup_version}"
        )
        self.out.print(
            f"{contents.archive}\ncreated {contents.created} by {contents.created_by}, "
            f"{shown_format}, {human_bytes(contents.archive_bytes)} on disk"
        )
        self.notes(contents.notes)
        table = Table()
        table.add_column("project")
        table.add_column("files", justify="right")
        table.add_column("data", justify="right")
        table.add_column("empty folders", justify="right")
        for project in contents.projects:
            table.add_row(
                project.name,
                str(project.files),
                human_bytes(project.bytes),
                str(project.empty_dirs),
            )
        table.add_row(
            "total", str(contents.total_files), human_bytes(contents.total_bytes), "", style="bold"
        )
        self.out.print(table)
        if contents.file_list is not None:
            files = Table()
            files.add_column("path")
            files.add_column("size", justify="right")
            files.add_column("sha256")
            for entry in contents.file_list:
                files.add_row(entry.path, str(entry.size), entry.sha256)
            self.out.print(files)

    def prune_result(
        self, result: PruneResult, *, preview: bool = False, table: bool = True
    ) -> None:
        """Render a prune: every archive kept or removed, with its reasons, then a summary.

        ``preview`` is the plan shown before asking: on stderr, never as JSON.
        """
        if table:
            for item in result.archives:
                if not item.intact:
                    fate = "kept" if item.kept else "to remove" if result.dry_run else "removed"
                    self.warning(f"{item.file} is damaged ({item.problem}); {fate}")
        if self.as_json:
            if not preview:
                self.emit_json(result)
            return
        if not self._human():
            return
        console = self.err if preview else self.out
        if table and result.archives:
            title = "Prune plan" if result.dry_run else "Pruned"
            grid = Table(title=f"{title}: {result.policy} in {result.backups_dir}")
            for column in ("group", "file", "created (UTC)", "size", "check", "action", "reasons"):
                if column in {"group", "file", "check", "reasons"}:
                    # Names fold onto more lines rather than being cut with an ellipsis.
                    grid.add_column(column, overflow="fold")
                else:
                    grid.add_column(
                        column, no_wrap=True, justify="right" if column == "size" else "left"
                    )
            for item in result.archives:
                action = "keep" if item.kept else "remove" if result.dry_run else "removed"
                grid.add_row(
                    item.group,
                    item.file,
                    item.timestamp.replace("T", " ").removesuffix("+00:00"),
                    human_bytes(item.bytes),
                    _with_format(
                        item.check if item.intact else item.check.replace("damaged", "DAMAGED", 1),
                        item.format,
                    ),
                    action,
                    ", ".join(item.reasons),
                )
            console.print(grid)
        total = result.kept + result.removed
        freed = human_bytes(result.bytes_freed)
        if preview:
            console.print(f"would remove {result.removed} of {total} backups, freeing {freed}")
        elif result.dry_run:
            console.print(
                f"dry run: would remove {result.removed} of {total} backups, freeing {freed}; "
                "nothing was deleted"
            )
        else:
            console.print(f"removed {result.removed} of {total} backups, freed {freed}")
