"""``fda-vault run``: the whole nightly job from one config, with one exit code.

Steps, in order: **backup** into the first destination (copying unchanged files from the
last backup), **verify** the new archive, **copy** it (and any other archive of its label
missing there) to each other destination, **prune** each destination by its own policy.
A failed step stops the steps that depend on it (no verify, copy or prune after a failed
backup; no prune of a destination whose copy failed) and not the others (one unreachable
destination does not stop the copy to the next). Each step is an event in its
location's audit trail. The exit code is the worst step's.

Around the steps: the ping URL hears ``/start`` before and the URL itself (success) or
``/fail`` after; the notification targets hear of a failure (or of every run, with
``notify_on = ["failure", "success"]``), the summary attached. A notification or ping
that cannot be sent is a warning: it never fails or loses a backup.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from fda_vault._config import xdg_home
from fda_vault._errors import ExitCode, FdaVaultError, LockedError, OperationError
from fda_vault._fsio import os_failure
from fda_vault._jobconfig import Destination, JobConfig, KeepPolicy, mask_url
from fda_vault._progress import NO_PROGRESS, Progress

if TYPE_CHECKING:
    from fda_vault._backup import BackupResult
    from fda_vault._prune import RetentionPolicy
    from fda_vault._storage import ObjectLock

__all__ = ["RunResult", "StepResult", "last_run", "run_job", "state_dir"]

StepName = Literal["backup", "verify", "copy", "prune"]


class StepResult(BaseModel):
    """One step of the run."""

    step: StepName
    location: str
    status: Literal["ok", "failed", "skipped", "planned"]
    exit_code: int = 0
    reason: str | None = None
    error: str | None = Field(default=None, description="the error line, or why skipped")
    seconds: float = 0.0
    summary: str = Field(default="", description="one line: what the step did")
    result: dict[str, Any] | None = Field(
        default=None, description="the step's own result (as backup/verify/copy/prune --json)"
    )


class RunResult(BaseModel):
    """What ``run`` did: every step, the worst exit code, and the warnings."""

    config: str
    host: str
    started: str = Field(description="ISO 8601 UTC")
    seconds: float
    dry_run: bool
    exit_code: int
    archive: str | None = Field(default=None, description="the archive this run wrote")
    steps: list[StepResult]
    warnings: list[str] = Field(default_factory=list)

    @property
    def failed(self) -> list[StepResult]:
        return [step for step in self.steps if step.status == "failed"]


def state_dir() -> Path:
    """``$XDG_STATE_HOME/fda-vault`` (default ``~/.local/state/fda-vault``)."""
    return xdg_home("XDG_STATE_HOME", ".local/state") / "fda-vault"


def _job_id(config_path: Path) -> str:
    return hashlib.sha256(str(config_path).encode()).hexdigest()[:16]


def last_run(config_path: Path) -> RunResult | None:
    """The last run of this config, as recorded after it (None: never, or unreadable)."""
    try:
        raw = (state_dir() / f"last-run-{_job_id(config_path)}.json").read_bytes()
        return RunResult.model_validate_json(raw)
    except (OSError, ValueError):
        return None


def _record(config_path: Path, result: RunResult) -> str | None:
    """Keep the result for ``status`` and ``schedule status``; a warning if it cannot be."""
    folder = state_dir()
    target = folder / f"last-run-{_job_id(config_path)}.json"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        tmp.write_text(result.model_dump_json(indent=2), encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        return f"the run's result not recorded in {target}: {exc.strerror}"
    return None


@contextmanager
def _job_lock(config_path: Path, timeout: float) -> Iterator[None]:
    """One run of a config at a time (a second waits ``timeout`` s, then fails): the
    folder lock of a state folder of the config's own."""
    from fda_vault._locking import folder_lock, holder_of

    folder = state_dir() / f"job-{_job_id(config_path)}"
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise os_failure(folder, exc, "cannot create the job's state folder") from None
    with ExitStack() as held:
        try:
            held.enter_context(folder_lock(folder, timeout))
        except LockedError:
            raise LockedError(
                config_path,
                f"another `fda-vault run` of this config is running ({holder_of(folder)})",
            ) from None
        yield


def run_job(
    config: JobConfig,
    config_path: Path,
    *,
    dry_run: bool = False,
    lock_timeout: float = 0.0,
    progress: Progress = NO_PROGRESS,
) -> RunResult:
    """Run the job ``config`` describes (see the module's text); never raises for a step's
    failure: each is in the result, whose ``exit_code`` is the worst."""
    clock = time.monotonic()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    warnings: list[str] = []
    with _job_lock(config_path, lock_timeout):
        if not dry_run:
            warnings += _ping(config.ping_url, "/start")
        steps, archive = _steps(config, config_path, dry_run, progress)
        worst = _worst(step.exit_code for step in steps)
        result = RunResult(
            config=str(config_path),
            host=socket.gethostname(),
            started=started,
            seconds=round(time.monotonic() - clock, 3),
            dry_run=dry_run,
            exit_code=worst,
            archive=archive,
            steps=steps,
        )
        if not dry_run:
            warnings += _ping(config.ping_url, "" if worst == 0 else "/fail")
            warnings += _notify(config, result)
            recorded = _record(config_path, result)
            if recorded:
                warnings.append(recorded)
        result.warnings = warnings
    return result


def _worst(codes: Iterable[int]) -> int:
    """The exit code of the whole run: damage over a key problem over a usage error over
    a failure (and 0 only when every step is 0)."""
    seen = set(codes)
    for code in (ExitCode.INTEGRITY, ExitCode.CANNOT_DECRYPT, ExitCode.USAGE, ExitCode.FAILURE):
        if int(code) in seen:
            return int(code)
    return max(seen, default=0)


def _steps(
    config: JobConfig, config_path: Path, dry_run: bool, progress: Progress
) -> tuple[list[StepResult], str | None]:
    from fda_vault._backup import backup
    from fda_vault._config import resolve_keys
    from fda_vault._copy import copy_archives
    from fda_vault._crypto import Encryption, Keys
    from fda_vault._prune import prune
    from fda_vault._signing import PublicKey, SigningKey
    from fda_vault._storage import archive_label, archive_path, open_location
    from fda_vault._verify import verify

    audit = [f"config={config_path}", "via run"]
    first, *others = config.destination
    try:  # a key file the config names but that is missing: the backup step's failure
        identities, passphrase = resolve_keys(
            [config.path_of(p) for p in config.identity],
            config.path_of(config.passphrase_file) if config.passphrase_file else None,
        )
    except FdaVaultError as exc:
        failed = StepResult(
            step="backup",
            location=str(first.resolved()),
            status="failed",
            exit_code=int(exc.exit_code),
            reason=exc.reason,
            error=exc.message,
        )
        return [failed, *_skipped(config, "the backup failed", verify=True)], None  # fmt: skip
    keys = Keys(identity_files=identities, passphrase_file=passphrase)
    home = first.resolved()
    label = archive_label(config.projects, not config.projects)
    steps: list[StepResult] = []

    def copy_to(dest: Destination) -> StepResult:
        return _step(
            "copy", dest.resolved(), audit,
            lambda: copy_archives(
                home, dest.resolved(), labels=[label], dry_run=dry_run,
                object_lock=_object_lock(dest),
            ),
            lambda r: f"{sum(1 for a in r.archives if a.status in {'copied', 'would copy'})} "
            f"{'to copy' if dry_run else 'copied'}, "
            f"{sum(1 for a in r.archives if a.status == 'present')} already there",
            exit_of=lambda r: int(r.exit_code), also_at=home, planned=dry_run,
        )  # fmt: skip

    def prune_at(dest: Destination, policy: RetentionPolicy) -> StepResult:
        return _step(
            "prune", dest.resolved(), audit,
            lambda: prune(dest.resolved(), policy, labels=[label], dry_run=dry_run, keys=keys),
            lambda r: f"{r.removed} {'to delete' if dry_run else 'deleted'}, {r.kept} kept "
            f"({r.policy})",
            exit_of=lambda r: 0 if r.ok else int(ExitCode.INTEGRITY), planned=dry_run,
        )  # fmt: skip

    if dry_run:
        steps.append(
            StepResult(
                step="backup", location=str(home), status="planned",
                summary=f"would back up {', '.join(config.projects) or 'every project'} of "
                f"{config.projects_root}",
            )
        )  # fmt: skip
        if not open_location(home).exists():  # a first run: nothing to copy or prune yet
            return steps + [
                StepResult(step=step, location=str(dest.resolved()), status="planned",
                           summary="would run after the first backup")
                for step, dest in _after_backup(config)
            ], None  # fmt: skip
        steps += [copy_to(dest) for dest in others]
        steps += [prune_at(d, _policy(d.keep)) for d in config.destination if d.keep]
        return steps, None

    def make_backup() -> BackupResult:
        # Keys are read inside the step: a bad one fails it (and is alerted), like any error.
        encryption = (
            Encryption.of(config.encrypt_to, passphrase) if config.encrypt_to or passphrase
            else None
        )  # fmt: skip
        sign_key = SigningKey.load(config.path_of(config.sign_key)) if config.sign_key else None
        return backup(
            config.projects, all_projects=not config.projects, projects_dir=config.projects_root,
            output_dir=home, level=config.level, excludes=config.exclude,
            full_every_days=config.full_every, object_lock=_object_lock(first),
            encryption=encryption, keys=keys, sign_key=sign_key, progress=progress,
            warn_same_disk=not others,  # a copy elsewhere is the answer to that warning
        )  # fmt: skip

    made = _step(
        "backup", home, audit, make_backup,
        lambda r: f"{_name(r.archive)}: {r.files} files, {r.reused_files} copied unread",
    )  # fmt: skip
    steps.append(made)
    if made.result is None:
        return steps + _skipped(config, "the backup failed", verify=True), None
    written = str(made.result["archive"])
    checked = _step(
        "verify", home, audit,
        lambda: verify(
            [archive_path(written)], keys=keys,
            trusted=[PublicKey.load(config.path_of(p)) for p in config.trusted_keys],
        ),
        lambda r: "intact" if r.ok else f"DAMAGED: {r.archives[0].problems[0].detail}",
        exit_of=lambda r: int(r.exit_code),
    )  # fmt: skip
    steps.append(checked)
    if checked.status != "ok":
        return steps + _skipped(config, "the new archive did not verify"), _name(written)
    copied = {str(home): True}
    for dest in others:
        steps.append(copy_to(dest))
        copied[str(dest.resolved())] = steps[-1].status == "ok"
    for dest in config.destination:
        if dest.keep is None:
            continue
        if copied[str(dest.resolved())]:
            steps.append(prune_at(dest, _policy(dest.keep)))
        else:
            steps.append(
                StepResult(step="prune", location=str(dest.resolved()), status="skipped",
                           error="the copy to this destination failed")
            )  # fmt: skip
    return steps, _name(written)


def _name(archive: str) -> str:
    return archive.rstrip("/").rsplit("/", 1)[-1]


def _object_lock(dest: Destination) -> ObjectLock | None:
    from fda_vault._storage import ObjectLock

    if not dest.object_lock_days:
        return None
    if dest.object_lock_mode == "compliance":
        return ObjectLock("COMPLIANCE", dest.object_lock_days)
    return ObjectLock("GOVERNANCE", dest.object_lock_days)


def _policy(keep: KeepPolicy) -> RetentionPolicy:
    from fda_vault._prune import RetentionPolicy

    return RetentionPolicy(
        keep_last=keep.last, keep_hourly=keep.hourly, keep_daily=keep.daily,
        keep_weekly=keep.weekly, keep_monthly=keep.monthly, keep_yearly=keep.yearly,
        keep_within=keep.within,
    )  # fmt: skip


def _after_backup(config: JobConfig) -> list[tuple[StepName, Destination]]:
    """The copy and prune steps, in order."""
    names: list[tuple[StepName, Destination]] = [("copy", d) for d in config.destination[1:]]
    return names + [("prune", d) for d in config.destination if d.keep is not None]


def _skipped(config: JobConfig, why: str, *, verify: bool = False) -> list[StepResult]:
    """The steps after one that failed, as skipped (``verify``: that one too)."""
    names: list[tuple[StepName, Destination]] = (
        [("verify", config.destination[0])] if verify else []
    )
    return [
        StepResult(step=step, location=str(dest.resolved()), status="skipped", error=why)
        for step, dest in names + _after_backup(config)
    ]


def _step(
    name: StepName,
    location: Path | str,
    audit_args: list[str],
    work: Callable[[], Any],
    describe: Callable[[Any], str],
    *,
    exit_of: Callable[[Any], int] = lambda _r: 0,
    also_at: Path | str | None = None,
    planned: bool = False,
) -> StepResult:
    """Run one step's library call, time it, record it in the audit trail (of
    ``location``, and ``also_at``: a copy's source) and turn any error into its result."""
    from fda_vault._audit import AuditRecorder

    recorder = AuditRecorder(name, audit_args)
    if also_at is not None:
        recorder.at(also_at)
    recorder.at(location, create=True)
    clock = time.monotonic()
    step = StepResult(step=name, location=str(location), status="ok")
    try:
        result = work()
    except FdaVaultError as exc:
        recorder.error = exc
        step.status, step.exit_code, step.reason = "failed", int(exc.exit_code), exc.reason
        step.error = exc.message
    except Exception as exc:  # a bug: reported as this step's failure, the others go on
        unexpected = OperationError(
            f"unexpected {type(exc).__name__}", str(exc), reason="unexpected"
        )
        recorder.error = unexpected
        step.status, step.exit_code, step.reason = "failed", 1, "unexpected"
        step.error = unexpected.message
    else:
        recorder.result = result
        step.result = json.loads(result.model_dump_json())
        step.summary = describe(result)
        step.exit_code = exit_of(result)
        if step.exit_code:
            step.status = "failed"
            step.reason = "damaged" if step.exit_code == ExitCode.INTEGRITY else "io_error"
            step.error = step.summary
        elif planned:
            step.status = "planned"
    step.seconds = round(time.monotonic() - clock, 3)
    if not planned:
        recorder.write(step.exit_code)
    return step


# --- telling people ---------------------------------------------------------------------

_TIMEOUT = 10.0


def _ping(url: str, suffix: str) -> list[str]:
    """GET ``url + suffix`` (healthchecks.io, Uptime Kuma push); a warning if it fails."""
    if not url:
        return []
    import urllib.error
    import urllib.request

    target = url.rstrip("/") + suffix
    try:
        with urllib.request.urlopen(target, timeout=_TIMEOUT) as response:  # noqa: S310 (http(s) only: validated)
            response.read(1024)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return [f"ping {mask_url(target)} not sent: {reason}"]
    return []


def alert_text(result: RunResult) -> tuple[str, str]:
    """The notification's title and body: the job, the failed step and its error line."""
    failed = result.failed
    if failed:
        first = failed[0]
        title = f"fda-vault run FAILED on {result.host}: {first.step} {first.location}"
    else:
        title = f"fda-vault run OK on {result.host}: {result.archive or 'nothing new'}"
    lines = [title, "", f"config: {result.config}", f"started: {result.started} "
             f"({result.seconds:.0f} s), exit code {result.exit_code}", ""]  # fmt: skip
    for step in result.steps:
        lines.append(f"- {step.step} {step.location}: {step.status.upper()}"
                     + (f" — {step.error}" if step.error else f" — {step.summary}"))  # fmt: skip
    return title, "\n".join(lines) + "\n"


def _notify(config: JobConfig, result: RunResult) -> list[str]:
    """Send the alert where ``notify`` says, when ``notify_on`` asks for it."""
    wanted = "failure" if result.exit_code else "success"
    if not config.notify or wanted not in config.notify_on:
        return []
    import tempfile

    import apprise

    title, body = alert_text(result)
    warnings = []
    with tempfile.TemporaryDirectory(prefix="fda-vault-alert-") as folder:
        summary = Path(folder) / "fda-vault-run.json"
        summary.write_text(result.model_dump_json(indent=2), encoding="utf-8")
        for url in config.notify:
            sender = apprise.Apprise()
            sender.add(url)
            try:
                sent = bool(sender.notify(title=title, body=body, attach=str(summary)))
            except Exception as exc:  # a plugin's own failure: a warning, never the run's
                sent = False
                why = f"{type(exc).__name__}: {exc}"
            else:
                why = "the service refused it or could not be reached"
            if not sent:
                warnings.append(f"notification to {mask_url(url)} not sent: {why}")
    return warnings
