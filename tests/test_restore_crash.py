"""kill -9 during a real restore: afterwards every project is entirely old or entirely new."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fda_vault import backup
from fda_vault._journal import JOURNAL_NAME, STAGING_PREFIX
from tests.tree import snapshot

PROJECTS = [f"K24{n:04d}_project" for n in range(4)]


def _fill(root: Path, version: bytes, seed: int) -> None:
    rng = random.Random(seed)
    for name in PROJECTS:
        for i in range(24):
            path = root / name / f"part_{i % 4}" / f"file_{i:02d}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            # Incompressible, so the restore spends real time writing.
            path.write_bytes(version + rng.randbytes(400_000))


def _fill_small(root: Path, version: bytes, seed: int) -> None:
    """1,250 small records per project: the restore stages them in worker processes."""
    rng = random.Random(seed)
    for name in PROJECTS:
        for i in range(1250):
            path = root / name / "records" / f"part_{i % 8}" / f"K{100000 + i}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(version + rng.randbytes(600).hex().encode())


def _restore_cmd(archive: Path, projects: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "fda_vault", "restore", str(archive),
        "--projects-dir", str(projects), "-q", *extra,
    ]  # fmt: skip


def _staged_files(projects: Path) -> int:
    return sum(
        len(files)
        for staging in projects.glob(f"{STAGING_PREFIX}*")
        for *_, files in os.walk(staging)
    )


@pytest.mark.slow
@pytest.mark.parametrize("fill", [_fill, _fill_small], ids=["large files", "many small files"])
def test_sigkill_at_any_point_leaves_old_or_new_never_a_mix(
    tmp_path: Path, fill: Callable[[Path, bytes, int], None]
) -> None:
    projects = tmp_path / "projects"
    fill(projects, b"NEW", seed=1)
    new_state = {n: snapshot(projects / n) for n in PROJECTS}
    archive = Path(
        backup(all_projects=True, projects_dir=projects, output_dir=tmp_path / "backups").archive
    )

    clock = time.monotonic()
    fill(projects, b"OLD", seed=2)
    subprocess.run(_restore_cmd(archive, projects, "--force"), check=True, timeout=120)
    full_run = time.monotonic() - clock
    assert {n: snapshot(projects / n) for n in PROJECTS} == new_state

    outcomes: set[str] = set()
    for fraction in (0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.97):
        fill(projects, b"OLD", seed=2)
        old_state = {n: snapshot(projects / n) for n in PROJECTS}
        proc = subprocess.Popen(_restore_cmd(archive, projects, "--force"))
        time.sleep(full_run * fraction)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        # Nobody writes on after the kill (worker processes die with their parent).
        staged = _staged_files(projects)
        time.sleep(0.3)
        assert _staged_files(projects) == staged

        # The next run on this target finishes or rolls back, and says so.
        after = subprocess.run(
            _restore_cmd(archive, projects, "--dry-run", "--json"),
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert after.returncode == 0, after.stderr
        assert "Traceback" not in after.stderr
        for name in PROJECTS:
            state = snapshot(projects / name)
            assert state in (old_state[name], new_state[name]), f"{name} is a mix at {fraction}"
        versions = {"new" if snapshot(projects / n) == new_state[n] else "old" for n in PROJECTS}
        assert len(versions) == 1, f"some projects old, some new at {fraction}: {versions}"
        outcomes |= versions
        leftovers = [
            p.name for p in projects.iterdir() if p.name.startswith((STAGING_PREFIX, JOURNAL_NAME))
        ]
        assert leftovers == []
    # Which side each kill fell on depends on timing; report it for the curious.
    print(f"full run {full_run:.2f}s, outcomes {sorted(outcomes)}", file=sys.stderr)
