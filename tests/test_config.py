"""Locations: the flag wins over the environment, which wins over the default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fda_vault._config import BACKUPS_ENV, PROJECTS_ENV, resolve_backups_dir, resolve_projects_dir
from tests.conftest import CliCall


def test_environment_variable_names() -> None:
    assert PROJECTS_ENV == "FDA_VAULT_PROJECTS_DIR"
    assert BACKUPS_ENV == "FDA_VAULT_BACKUP_DIR"


def test_projects_default_is_under_home() -> None:
    home = Path.home()
    assert resolve_projects_dir() == home / "fda-510k-data" / "projects"


def test_projects_environment_beats_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(PROJECTS_ENV, str(tmp_path / "env"))
    assert resolve_projects_dir() == tmp_path / "env"


def test_projects_flag_beats_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(PROJECTS_ENV, str(tmp_path / "env"))
    assert resolve_projects_dir(tmp_path / "flag") == tmp_path / "flag"


def test_an_empty_environment_variable_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROJECTS_ENV, "")
    monkeypatch.setenv(BACKUPS_ENV, "")
    assert resolve_projects_dir() == Path.home() / "fda-510k-data" / "projects"
    assert resolve_backups_dir() == Path.home() / "fda-510k-data" / "projects" / "backups"


def test_tilde_and_relative_paths_become_absolute(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_projects_dir(Path("rel/projects")) == tmp_path / "rel" / "projects"
    assert resolve_projects_dir(Path("~/p")) == Path.home() / "p"
    monkeypatch.setenv(BACKUPS_ENV, "~/vault")
    assert resolve_backups_dir() == Path.home() / "vault"


def test_backups_default_follows_the_projects_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert resolve_backups_dir(None, tmp_path / "p") == tmp_path / "p" / "backups"
    monkeypatch.setenv(PROJECTS_ENV, str(tmp_path / "envp"))
    assert resolve_backups_dir() == tmp_path / "envp" / "backups"


def test_backups_environment_and_flag(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(BACKUPS_ENV, str(tmp_path / "envb"))
    assert resolve_backups_dir(None, tmp_path / "p") == tmp_path / "envb"
    assert resolve_backups_dir(tmp_path / "flag", tmp_path / "p") == tmp_path / "flag"


@pytest.mark.parametrize("how", ["flag", "env"])
@pytest.mark.parametrize(
    ("url", "reason", "says"),
    [
        ("gs://bucket/fda", "usage", "only s3:// URLs are supported"),
        # Understood as object storage (not a folder named "s3:"); no keys in this test.
        ("s3://bucket/fda", "no_credentials", "no AWS credentials"),
    ],
)
def test_a_url_is_never_made_a_folder(
    cli: CliCall,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
    url: str,
    reason: str,
    says: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    args = ["list", "--json"] + (["--backups-dir", url] if how == "flag" else [])
    env = {"FDA_VAULT_BACKUP_DIR": url} if how == "env" else None
    result = cli(*args, env=env)
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["reason"] == reason
    assert says in result.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "home"]
