"""Encrypted backups (age and OpenPGP AES-256): round trips, wrong and missing keys,
damaged ciphertext, the index, reuse, copy, secrets, and recovery without fda-vault
with the real ``age``, ``gpg``, ``unzip`` and ``sha256sum`` binaries."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import signal
import stat
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fda_vault._audit import TRAIL_NAME
from fda_vault._crypto import AGE_SUFFIX, Keys
from fda_vault._members import open_archive
from tests.conftest import CliCall, FrozenClock, backup_json
from tests.s3servers import Bucket
from tests.test_faults import _cmd, _incompressible_project
from tests.tree import snapshot

PASSPHRASE = "correct horse battery staple 510k"


def _json(cli: CliCall, *args: str | Path, code: int = 0) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == code, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def _key(cli: CliCall, path: Path) -> str:
    """A new age identity at ``path`` (fda-vault key generate); its public key."""
    made = _json(cli, "key", "generate", path)
    assert made["identity_file"] == str(path)
    return str(made["public_key"])


@pytest.fixture(params=["age-binary", "pyrage"])
def engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """age streams through the ``age`` program when it is installed, else in-process
    through pyrage: each test that takes this fixture runs with both."""
    if request.param == "pyrage":
        monkeypatch.setattr("fda_vault._crypto.age_binary", lambda: None)
    else:
        assert shutil.which("age"), "the age binary (apt install age) is needed by this test"
    return str(request.param)


@pytest.fixture
def age_key(cli: CliCall, tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "keys" / "age-key.txt"
    path.parent.mkdir()
    return path, _key(cli, path)


@pytest.fixture
def passphrase_file(tmp_path: Path) -> Path:
    path = tmp_path / "passphrase.txt"
    path.write_text(PASSPHRASE + "\n")
    path.chmod(0o600)
    return path


def _age_backup(
    cli: CliCall, projects_dir: Path, output: Path | str, public: str, *, one: bool = False
) -> Any:
    """``backup --all`` (``one``: of the cardiac project only) encrypted to ``public``,
    its JSON result."""
    which = ("-p", "K241234_cardiac_monitor") if one else ("--all",)
    return backup_json(
        cli, *which, "--projects-dir", projects_dir, "--output-dir", output,
        "--encrypt-to", public,
    )  # fmt: skip


def _restore_and_compare(
    cli: CliCall, archive: str, projects_dir: Path, target: Path, *keys: str | Path
) -> None:
    target.mkdir()
    done = _json(cli, "restore", archive, "--target-dir", target, "--yes", *keys)
    assert done["restored"]
    for project in done["restored"]:
        assert snapshot(target / project) == snapshot(projects_dir / project)


def _archive_files(folder: Path) -> list[str]:
    """The files in a backups folder but its lock and its audit trail."""
    return sorted(
        p.name for p in folder.iterdir() if not p.name.startswith(".") and p.name != TRAIL_NAME
    )


def test_age_round_trip_list_verify_restore(
    cli: CliCall,
    projects_dir: Path,
    backups_dir: Path,
    tmp_path: Path,
    age_key: tuple[Path, str],
    engine: str,
) -> None:
    key, public = age_key
    backups_dir.mkdir(mode=0o700)
    orphan = backups_dir / "all_projects_backup_20200101_000000.zip.idx.age"
    orphan.write_bytes(b"an index whose archive is gone")  # a killed run's, or pruned by hand
    made = _age_backup(cli, projects_dir, backups_dir, public)
    archive = Path(made["archive"])
    assert archive.name.endswith(".zip.age") and made["encrypted"] == "age"
    assert made["recipients"] == [public]
    assert sorted(
        p.name for p in backups_dir.iterdir() if not p.name.startswith(".") and p.name != TRAIL_NAME
    ) == [
        archive.name,
        archive.name.removesuffix(".zip.age") + ".zip.idx.age",
    ]  # the orphan index was removed under the folder's lock
    assert not orphan.exists()
    # What is stored is ciphertext: no file name of the projects shows in it.
    stored = archive.read_bytes()
    assert stored.startswith(b"age-encryption.org/v1\n")
    assert b"device_profile.json" not in stored and b"metadata.json" not in stored
    assert made["archive_sha256"] == hashlib.sha256(stored).hexdigest()

    listed = _json(cli, "list", "--backups-dir", backups_dir, "-i", key)
    assert [(b["file"], b["encrypted"], b["files"]) for b in listed["backups"]] == [
        (archive.name, "age", made["files"])
    ]
    contents = _json(cli, "list", archive, "-i", key)
    assert sorted(p["name"] for p in contents["projects"]) == sorted(made["projects"])
    checked = _json(cli, "verify", archive, "-i", key)
    assert checked["ok"] and checked["archives"][0]["files_checked"] == made["files"]
    _restore_and_compare(cli, str(archive), projects_dir, tmp_path / "restored", "-i", key)


def test_several_recipients_each_open_it_and_an_ssh_key_too(
    cli: CliCall, projects_dir: Path, backups_dir: Path, tmp_path: Path, engine: str
) -> None:
    alice, bob = tmp_path / "alice.txt", tmp_path / "bob.txt"
    alice_pub, bob_pub = _key(cli, alice), _key(cli, bob)
    ssh_secret = Ed25519PrivateKey.generate()
    ssh_key = tmp_path / "id_ed25519"
    ssh_key.write_bytes(
        ssh_secret.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    ssh_pub = ssh_secret.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    recipients = tmp_path / "team-recipients.txt"
    recipients.write_text(f"# the team\n{bob_pub}\n\n{ssh_pub.decode()} carol@laptop\n")
    made = backup_json(
        cli, "-p", "K241234_cardiac_monitor", "--projects-dir", projects_dir,
        "--output-dir", backups_dir, "--encrypt-to", alice_pub, "--encrypt-to", f"@{recipients}",
    )  # fmt: skip
    assert len(made["recipients"]) == 3
    for key in (alice, bob, ssh_key):
        assert _json(cli, "verify", made["archive"], "-i", key)["ok"], key
    stranger = tmp_path / "stranger.txt"
    _key(cli, stranger)
    refused = cli("verify", made["archive"], "-i", stranger)
    assert refused.exit_code == 5
    assert "not one of its recipients" in refused.stderr


def test_passphrase_round_trip(
    cli: CliCall, projects_dir: Path, backups_dir: Path, tmp_path: Path, passphrase_file: Path
) -> None:
    made = backup_json(
        cli, "--all", "--projects-dir", projects_dir, "--output-dir", backups_dir,
        "--passphrase-file", passphrase_file,
    )  # fmt: skip
    archive = made["archive"]
    assert archive.endswith(".zip.gpg") and made["encrypted"] == "gpg"
    assert PASSPHRASE not in json.dumps(made)
    env = {"FDA_VAULT_PASSPHRASE_FILE": str(passphrase_file)}
    verified = cli("verify", archive, "--json", env=env)
    assert verified.exit_code == 0, verified.stderr
    _restore_and_compare(
        cli, archive, projects_dir, tmp_path / "restored", "--passphrase-file", passphrase_file
    )


def test_a_missing_or_wrong_key_is_exit_5_and_names_the_archive(
    cli: CliCall,
    projects_dir: Path,
    backups_dir: Path,
    tmp_path: Path,
    age_key: tuple[Path, str],
    passphrase_file: Path,
    engine: str,
) -> None:
    _key_path, public = age_key
    common = ("--all", "--projects-dir", projects_dir, "--output-dir", backups_dir)
    aged = backup_json(cli, *common, "--encrypt-to", public)["archive"]
    gpged = backup_json(cli, *common, "--passphrase-file", passphrase_file)["archive"]
    wrong_pass = tmp_path / "wrong.txt"
    wrong_pass.write_text("not the passphrase\n")
    other = tmp_path / "other.txt"
    _key(cli, other)
    for archive, args, reason in [
        (aged, (), "no_key"),
        (aged, ("-i", other), "wrong_key"),
        (gpged, (), "no_key"),
        (gpged, ("--passphrase-file", wrong_pass), "wrong_key"),
    ]:
        for command in (("verify", archive), ("list", archive), ("restore", archive, "--yes")):
            result = cli(*command, *args, "--json", "--target-dir", tmp_path / "t")
            if command[0] != "restore":
                result = cli(*command, *args, "--json")
            assert result.exit_code == 5, (command, args, result.stderr)
            error = json.loads(result.stdout)["error"]
            assert error["reason"] == reason and error["exit_code"] == 5, error
            assert Path(archive).name in error["message"]
            assert "not_found" not in result.stderr
    assert not (tmp_path / "t").exists() or not list((tmp_path / "t").iterdir())


def test_a_recipient_file_with_a_bad_line_is_refused_before_anything_is_written(
    cli: CliCall, projects_dir: Path, backups_dir: Path, tmp_path: Path, age_key: tuple[Path, str]
) -> None:
    recipients = tmp_path / "recipients.txt"
    recipients.write_text(f"{age_key[1]}\n# ok so far\nage1notakey\n")
    result = cli(
        "backup", "--all", "--projects-dir", projects_dir, "--output-dir", backups_dir,
        "--encrypt-to", f"@{recipients}",
    )  # fmt: skip
    assert result.exit_code == 2
    assert f"{recipients}: line 3" in result.stderr and "recipient" in result.stderr
    assert "Traceback" not in result.stderr
    assert not backups_dir.exists() or not list(backups_dir.glob("*.zip*"))
    both = cli(
        "backup", "--all", "--projects-dir", projects_dir, "--output-dir", backups_dir,
        "--encrypt-to", age_key[1], "--passphrase-file", recipients,
    )  # fmt: skip
    assert both.exit_code == 2 and "choose one" in both.stderr


@pytest.mark.parametrize("kind", ["age", "gpg"])
@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_damaged_ciphertext_is_exit_3_and_restores_nothing(
    cli: CliCall,
    projects_dir: Path,
    backups_dir: Path,
    tmp_path: Path,
    age_key: tuple[Path, str],
    passphrase_file: Path,
    kind: str,
    damage: str,
    engine: str,
) -> None:
    key, public = age_key
    secret = ("-i", key) if kind == "age" else ("--passphrase-file", passphrase_file)
    encrypt = ("--encrypt-to", public) if kind == "age" else ("--passphrase-file", passphrase_file)
    made = backup_json(
        cli, "--all", "--projects-dir", projects_dir, "--output-dir", backups_dir, *encrypt
    )
    archive = Path(made["archive"])
    data = bytearray(archive.read_bytes())
    if damage == "truncated":
        del data[len(data) // 2 :]
    else:
        data[len(data) // 2] ^= 0x20  # in the middle of the file data
    archive.write_bytes(bytes(data))
    checked = _json(cli, "verify", archive, *secret, code=3)
    report = checked["archives"][0]
    assert report["status"] == "damaged", report
    target = tmp_path / "restored"
    target.mkdir()
    refused = cli("restore", archive, "--target-dir", target, "--yes", *secret)
    assert refused.exit_code == 3, refused.stderr
    assert list(target.iterdir()) == []
    assert "Traceback" not in refused.stderr


def test_list_reads_the_index_only_and_verify_checks_it_against_the_archive(
    cli: CliCall, projects_dir: Path, backups_dir: Path, age_key: tuple[Path, str]
) -> None:
    key, public = age_key
    made = _age_backup(cli, projects_dir, backups_dir, public)
    archive = Path(made["archive"])
    original = archive.read_bytes()
    # The archive's body damaged: list (index only) still answers, verify does not.
    damaged = bytearray(original)
    damaged[len(damaged) // 3] ^= 1
    archive.write_bytes(bytes(damaged))
    contents = _json(cli, "list", archive, "-i", key)
    assert sum(p["files"] for p in contents["projects"]) == made["files"]
    assert _json(cli, "verify", archive, "-i", key, code=3)["ok"] is False
    archive.write_bytes(original)
    # Without its index, everything still works (the archive is decrypted whole first).
    index = archive.with_name(archive.name.removesuffix(".zip.age") + ".zip.idx.age")
    saved = index.read_bytes()
    index.unlink()
    assert _json(cli, "verify", archive, "-i", key)["ok"]
    assert _json(cli, "list", archive, "-i", key)["projects"]
    # An index that does not describe this archive (another backup's) is damage.
    other = _age_backup(cli, projects_dir, backups_dir, public, one=True)
    other_archive = Path(other["archive"])
    other_index = other_archive.with_name(
        other_archive.name.removesuffix(".zip.age") + ".zip.idx.age"
    )
    shutil.copyfile(other_index, index)
    assert _json(cli, "verify", archive, "-i", key, code=3)["ok"] is False
    index.write_bytes(saved)
    assert _json(cli, "verify", archive, "-i", key)["ok"]
    naming_the_index = cli("verify", index, "-i", key)
    assert naming_the_index.exit_code == 2 and "the index of" in naming_the_index.stderr


def test_reuse_from_an_encrypted_parent_needs_its_key(
    cli: CliCall,
    projects_dir: Path,
    backups_dir: Path,
    frozen_clock: FrozenClock,
    age_key: tuple[Path, str],
) -> None:
    key, public = age_key
    common = ("--all", "--projects-dir", projects_dir, "--output-dir", backups_dir)
    frozen_clock.set(2030, 1, 1, 2, 0, 0)  # every file is older than the parent by 3 s
    first = backup_json(cli, *common, "--encrypt-to", public)
    frozen_clock.set(2030, 1, 2, 2, 0, 0)
    blind = backup_json(cli, *common, "--encrypt-to", public)
    assert blind["reused_files"] == 0
    assert [w["reason"] for w in blind["warnings"]] == ["parent_unusable"]
    assert "no age identity" in blind["warnings"][0]["detail"]
    frozen_clock.set(2030, 1, 3, 2, 0, 0)
    child = backup_json(cli, *common, "--encrypt-to", public, "-i", key)
    assert child["parent"] == Path(blind["archive"]).name
    assert child["reused_files"] == first["files"]
    checked = _json(cli, "verify", child["archive"], "-i", key)
    assert checked["ok"] and checked["archives"][0]["files_checked"] == first["files"]


def test_copy_needs_no_key_and_the_copy_opens_with_it(
    cli: CliCall, projects_dir: Path, backups_dir: Path, tmp_path: Path, age_key: tuple[Path, str]
) -> None:
    key, public = age_key
    made = _age_backup(cli, projects_dir, backups_dir, public)
    offsite = tmp_path / "offsite"
    copied = _json(cli, "copy", backups_dir, offsite)
    assert [a["status"] for a in copied["archives"]] == ["copied"]
    name = Path(made["archive"]).name
    assert (offsite / name).read_bytes() == Path(made["archive"]).read_bytes()
    assert (offsite / (name.removesuffix(".zip.age") + ".zip.idx.age")).is_file()
    assert _json(cli, "verify", offsite / name, "-i", key)["ok"]
    # prune deletes the index with its archive.
    second = _age_backup(cli, projects_dir, offsite, public)
    pruned = _json(cli, "prune", "--backups-dir", offsite, "--keep-last", "1", "--yes", "-i", key)
    assert [a["file"] for a in pruned["archives"] if not a["kept"]] == [name]
    left = sorted(
        p.name for p in offsite.iterdir() if not p.name.startswith(".") and p.name != TRAIL_NAME
    )
    kept = Path(second["archive"]).name
    assert left == sorted([kept, kept.removesuffix(".zip.age") + ".zip.idx.age"])


def test_prune_without_the_key_deletes_nothing(
    cli: CliCall, projects_dir: Path, backups_dir: Path, age_key: tuple[Path, str]
) -> None:
    common = ("--all", "--projects-dir", projects_dir, "--output-dir", backups_dir)
    backup_json(cli, *common, "--encrypt-to", age_key[1])
    backup_json(cli, *common, "--encrypt-to", age_key[1])
    before = sorted(p.name for p in backups_dir.iterdir())
    result = cli("prune", "--backups-dir", backups_dir, "--keep-last", "1", "--yes")
    assert result.exit_code == 5, result.stderr
    assert sorted(p.name for p in backups_dir.iterdir()) == before


def test_a_large_file_streams_through_the_encryption(
    cli: CliCall,
    projects_dir: Path,
    backups_dir: Path,
    tmp_path: Path,
    age_key: tuple[Path, str],
    engine: str,
) -> None:
    """A file larger than the open entry the sink holds back (2 MiB) is passed on to the
    encryption as it is read (its CRC and sizes follow it): the round trip is exact."""
    big = projects_dir / "K241234_cardiac_monitor" / "pdfs" / "scan.pdf"
    big.parent.mkdir(exist_ok=True)
    big.write_bytes(os.urandom(12 << 20) + b"%%EOF" * 1000)
    key, public = age_key
    made = _age_backup(cli, projects_dir, backups_dir, public, one=True)
    _restore_and_compare(cli, made["archive"], projects_dir, tmp_path / "restored", "-i", key)


def test_a_large_file_changed_while_encrypted_means_the_archive_is_written_again(
    cli: CliCall,
    projects_dir: Path,
    backups_dir: Path,
    tmp_path: Path,
    age_key: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its first bytes are encrypted already when the change is seen: the entry cannot be
    cut off, so the archive is written again (here the file is seen changed once)."""
    big = projects_dir / "K241234_cardiac_monitor" / "scan.pdf"
    big.write_bytes(os.urandom(6 << 20))
    packer = importlib.import_module("fda_vault._packer")
    original = packer._changed_while_read
    seen: list[str] = []

    def changed_once(job: Any) -> bool:
        if job.src.path == str(big) and not seen:
            seen.append(job.src.path)
            return True
        return bool(original(job))

    monkeypatch.setattr(packer, "_changed_while_read", changed_once)
    key, public = age_key
    made = _age_backup(cli, projects_dir, backups_dir, public, one=True)
    assert seen == [str(big)]
    assert list(backups_dir.glob("*.tmp")) == []
    _restore_and_compare(cli, made["archive"], projects_dir, tmp_path / "restored", "-i", key)


def _inner_zip(tmp_path: Path, archive: Path, *command: str) -> Path:
    """Decrypt ``archive`` with a real tool (``command`` + the archive, ciphertext on
    stdin for gpg) into ``tmp_path/inner.zip``."""
    inner = tmp_path / "inner.zip"
    with open(archive, "rb") as source, open(inner, "wb") as out:
        done = subprocess.run(
            command, stdin=source, stdout=out, stderr=subprocess.PIPE, timeout=120, check=False
        )
    assert done.returncode == 0, done.stderr
    return inner


def _check_without_fda_vault(tmp_path: Path, inner: Path) -> None:
    tested = subprocess.run(["unzip", "-tq", str(inner)], capture_output=True, text=True,
                            timeout=120, check=False)  # fmt: skip
    assert tested.returncode == 0 and "No errors detected" in tested.stdout, tested.stdout
    out = tmp_path / "extracted"
    out.mkdir()
    subprocess.run(["unzip", "-q", str(inner), "-d", str(out)], check=True, timeout=120)
    summed = subprocess.run(["sha256sum", "-c", "checksums.txt"], cwd=out, capture_output=True,
                            text=True, timeout=120, check=False)  # fmt: skip
    assert summed.returncode == 0, summed.stdout + summed.stderr
    assert summed.stdout.count(": OK") >= 3


def test_recovery_without_fda_vault_with_age(
    cli: CliCall, projects_dir: Path, backups_dir: Path, tmp_path: Path, age_key: tuple[Path, str]
) -> None:
    key, public = age_key
    made = _age_backup(cli, projects_dir, backups_dir, public)
    age = shutil.which("age")
    assert age is not None, "the age binary (apt install age) is needed by this test"
    inner = _inner_zip(tmp_path, Path(made["archive"]), age, "-d", "-i", str(key))
    _check_without_fda_vault(tmp_path, inner)
    # The inner file is an ordinary fda-vault archive: verified as one, with its files.
    plain = _json(cli, "verify", inner)
    assert plain["ok"] and plain["archives"][0]["files_checked"] == made["files"]


def test_recovery_without_fda_vault_with_gpg(
    cli: CliCall, projects_dir: Path, backups_dir: Path, tmp_path: Path, passphrase_file: Path
) -> None:
    made = backup_json(
        cli, "--all", "--projects-dir", projects_dir, "--output-dir", backups_dir,
        "--passphrase-file", passphrase_file,
    )  # fmt: skip
    gpg = shutil.which("gpg")
    assert gpg is not None, "the gpg binary is needed by this test"
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    inner = _inner_zip(
        tmp_path, Path(made["archive"]), gpg, "--homedir", str(home), "--batch", "--quiet",
        "--pinentry-mode", "loopback", "--passphrase-file", str(passphrase_file), "--decrypt",
    )  # fmt: skip
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)
    _check_without_fda_vault(tmp_path, inner)
    with zipfile.ZipFile(inner) as zf:
        assert "metadata.json" in zf.namelist()


def test_the_inner_archive_is_the_one_an_unencrypted_backup_writes(
    cli: CliCall,
    projects_dir: Path,
    tmp_path: Path,
    frozen_clock: FrozenClock,
    age_key: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Same projects, same start time, same member times: the decrypted age archive and
    an unencrypted backup are byte for byte the same file."""
    monkeypatch.setattr("fda_vault._backup.time.time", lambda: 1_900_000_000.0)
    key, public = age_key
    common = ("--all", "--projects-dir", projects_dir, "--rehash")
    plain = backup_json(cli, *common, "--output-dir", tmp_path / "plain")
    # The same trail too: each manifest records its folder's trail head (audit_head).
    (tmp_path / "enc").mkdir()
    trail = (tmp_path / "plain" / TRAIL_NAME).read_bytes()
    (tmp_path / "enc" / TRAIL_NAME).write_bytes(trail[: trail.index(b"\n") + 1])
    encrypted = backup_json(cli, *common, "--output-dir", tmp_path / "enc", "--encrypt-to", public)
    age = shutil.which("age")
    assert age is not None
    inner = _inner_zip(tmp_path, Path(encrypted["archive"]), age, "-d", "-i", str(key))
    assert inner.read_bytes() == Path(plain["archive"]).read_bytes()


def test_secrets_never_reach_output_or_a_command_line(
    cli: CliCall,
    projects_dir: Path,
    backups_dir: Path,
    tmp_path: Path,
    passphrase_file: Path,
    age_key: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """gpg and age are replaced on PATH by scripts that record their arguments and
    environment, then run the real programs: no secret is in either; nor in any output."""
    shims = tmp_path / "bin"
    shims.mkdir()
    record = tmp_path / "calls.txt"
    for program in ("gpg", "age"):
        real = shutil.which(program)
        assert real is not None, program
        shim = shims / program
        shim.write_text(
            f'#!/bin/sh\nprintf "%s\\n" "$*" >> {record}\nenv >> {record}\nexec {real} "$@"\n'
        )
        shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")
    made = cli(
        "backup", "--all", "--projects-dir", projects_dir, "--output-dir", backups_dir,
        "--passphrase-file", passphrase_file, "--json",
    )  # fmt: skip
    assert made.exit_code == 0, made.stderr
    archive = json.loads(made.stdout)["archive"]
    listed = cli("list", archive, "--files", "--passphrase-file", passphrase_file)
    verified = cli("verify", archive, "--passphrase-file", passphrase_file, "--json")
    calls = record.read_text()
    assert "--symmetric" in calls and "--decrypt" in calls  # the shim did run
    secret_key = age_key[0].read_text().splitlines()[-1]
    for text in (made.stdout, made.stderr, listed.stdout, listed.stderr, verified.stdout, calls):
        assert PASSPHRASE not in text
        assert secret_key not in text
    # An age backup (its own key for the read-back goes to age on a pipe) and a verify.
    key_backup = backup_json(
        cli, "--all", "--projects-dir", projects_dir, "--output-dir", backups_dir,
        "--encrypt-to", age_key[1], "-i", age_key[0],
    )  # fmt: skip
    checked = cli("verify", key_backup["archive"], "-i", age_key[0], "--json")
    assert checked.exit_code == 0, checked.stderr
    calls = record.read_text()
    assert "--encrypt" in calls and "/dev/fd/" in calls  # the age shim did run
    assert "AGE-SECRET-KEY-" not in calls
    assert secret_key not in json.dumps(key_backup) and secret_key not in checked.stdout
    assert str(age_key[0]) not in json.dumps(key_backup)


def test_no_plaintext_is_left_in_the_temporary_folder(
    cli: CliCall, projects_dir: Path, backups_dir: Path, tmp_path: Path, age_key: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    big = projects_dir / "K241234_cardiac_monitor" / "big.bin"
    big.write_bytes(b"confidential 510(k) text " * 800_000)
    key, public = age_key
    made = _age_backup(cli, projects_dir, backups_dir, public)
    assert _json(cli, "verify", made["archive"], "-i", key)["ok"]
    assert list(scratch.iterdir()) == []  # scratch files are unlinked at once
    assert not list(backups_dir.glob("*.tmp"))
    assert AGE_SUFFIX in made["archive"]


def test_encrypted_backups_in_object_storage(
    cli: CliCall, projects_dir: Path, tmp_path: Path, s3: Bucket, age_key: tuple[Path, str]
) -> None:
    key, public = age_key
    location = f"{s3.url}/laptop-1"
    orphan = f"{s3.prefix}/laptop-1/all_projects_backup_20200101_000000.zip.idx.age"
    s3.client.put_object(Bucket=s3.name, Key=orphan, Body=b"an index whose archive is gone")
    made = _age_backup(cli, projects_dir, location, public)
    name = Path(made["archive"]).name
    assert s3.keys() == sorted(
        [f"laptop-1/{name}", f"laptop-1/{name.removesuffix('.zip.age')}.zip.idx.age"]
    )
    listed = _json(cli, "list", "--backups-dir", location, "-i", key)
    assert [b["file"] for b in listed["backups"]] == [name]
    assert _json(cli, "verify", made["archive"], "-i", key)["ok"]
    _restore_and_compare(cli, made["archive"], projects_dir, tmp_path / "restored", "-i", key)
    back = tmp_path / "back"
    assert [a["status"] for a in _json(cli, "copy", location, back)["archives"]] == ["copied"]
    assert _json(cli, "verify", back / name, "-i", key)["ok"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["age", "gpg"])
def test_sigkill_during_an_encrypted_backup_leaves_nothing_half_made(
    cli: CliCall, tmp_path: Path, age_key: tuple[Path, str], passphrase_file: Path, kind: str
) -> None:
    """Real processes killed at five points: every archive left under a final name opens
    and verifies, with its index; the next run removes the temporary files; nothing of
    the run stays in the temporary folder (no scratch file, no gpg home or agent)."""
    projects = tmp_path / "projects"
    _incompressible_project(projects, "K9", files=24, size=1_500_000)
    out = tmp_path / "out"
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    key, public = age_key
    how = ["--encrypt-to", public] if kind == "age" else ["--passphrase-file", str(passphrase_file)]
    secret = ["-i", str(key)] if kind == "age" else ["--passphrase-file", str(passphrase_file)]
    cmd = _cmd("backup", "--all", "--projects-dir", projects, "--output-dir", out, "-q", *how)
    clock = time.monotonic()
    subprocess.run(cmd, check=True, timeout=120, env=env)
    full_run = time.monotonic() - clock
    for fraction in (0.1, 0.3, 0.5, 0.7, 0.9):
        proc = subprocess.Popen(cmd, env=env)
        time.sleep(full_run * fraction)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        for archive in out.glob(f"*.zip.{kind}"):
            if ".idx." in archive.name:
                continue
            checked = cli("verify", archive, *secret, "--json")
            assert checked.exit_code == 0, (fraction, checked.stdout, checked.stderr)
    subprocess.run(cmd, check=True, timeout=120, env=env)
    assert list(out.glob("*.tmp")) == []
    archives = [a for a in out.glob(f"*.zip.{kind}") if ".idx." not in a.name]
    indexes = list(out.glob(f"*.zip.idx.{kind}"))
    assert len(archives) == len(indexes) >= 2
    assert list(scratch.iterdir()) == []  # scratch files have no name
    # gpg homes (in /tmp: this TMPDIR is too long for an agent's socket) of the killed
    # runs were removed by the runs after them, their agents stopped.
    dead = [
        home for home in Path("/tmp").glob("fda-vault-gpg-*")
        if not Path(f"/proc/{home.name.split('-')[3]}").exists()
    ]  # fmt: skip
    assert dead == []


def test_a_block_read_again_after_it_was_forgotten_comes_from_a_second_decryption(
    cli: CliCall, projects_dir: Path, backups_dir: Path, age_key: tuple[Path, str]
) -> None:
    """Blocks read whole leave memory without being stored; reading one again (no
    command does, but the reader must stay right) decrypts the archive a second time."""
    big = projects_dir / "K241234_cardiac_monitor" / "pdfs" / "scan.pdf"
    big.parent.mkdir(exist_ok=True)
    big.write_bytes(os.urandom(12 << 20))
    key, public = age_key
    made = _age_backup(cli, projects_dir, backups_dir, public, one=True)
    archive = Path(made["archive"])
    keys = Keys(identity_files=(key,))
    inner = _pyrage_module().decrypt(archive.read_bytes(), keys.age_identities(archive))
    with open_archive(archive, keys) as zf:
        source = zf.source
        step = 256 << 10
        for offset in range(0, source.size - step, step):  # everything, in order, once
            assert source.pread(step, offset) == inner[offset : offset + step]
        assert source.pread(1000, 10) == inner[10:1010]  # long forgotten by now
        assert source.pread(step, 3 << 20) == inner[3 << 20 : (3 << 20) + step]
        assert source._replay is not None  # type: ignore[attr-defined]  # it was needed


def _pyrage_module() -> Any:
    import pyrage

    return pyrage
