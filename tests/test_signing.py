"""Signed archives: minisign signatures of metadata.json and checksums.txt, checked by
``verify --trusted-key`` and by the real ``minisign`` binary."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from fda_vault._signing import PublicKey, SigningKey, prehash
from tests.conftest import CliCall, backup_json, rewrite_archive

MINISIGN = shutil.which("minisign") or "minisign"  # .ci/run installs it (Debian's package)


@pytest.fixture
def sign_key(cli: CliCall, tmp_path: Path) -> Path:
    key = tmp_path / "keys" / "signing.key"
    key.parent.mkdir()
    made = cli("key", "generate", "--sign", key, "--json")
    assert made.exit_code == 0, made.stderr
    assert json.loads(made.stdout)["public_key_file"] == f"{key}.pub"
    return key


@pytest.fixture
def signed(cli: CliCall, projects_dir: Path, backups_dir: Path, sign_key: Path) -> Path:
    made = backup_json(
        cli, "--all", "--projects-dir", projects_dir, "--output-dir", backups_dir,
        "--sign-key", sign_key,
    )  # fmt: skip
    assert made["signed_by"] == PublicKey.load(Path(f"{sign_key}.pub")).key_id_text
    return Path(made["archive"])


def _verify(cli: CliCall, archive: Path, *keys: Path) -> tuple[int, dict[str, object]]:
    args = [a for key in keys for a in ("--trusted-key", str(key))]
    result = cli("verify", archive, *args, "--json")
    report: dict[str, object] = json.loads(result.stdout)["archives"][0]
    return result.exit_code, report


def test_a_signed_archive_verifies_with_its_key(cli: CliCall, signed: Path, sign_key: Path) -> None:
    code, report = _verify(cli, signed, Path(f"{sign_key}.pub"))
    assert code == 0, report
    assert report["signature_checked"] is True
    with zipfile.ZipFile(signed) as zf:
        assert {"metadata.json.minisig", "checksums.txt.minisig"} <= set(zf.namelist())
    human = cli("verify", signed, "--trusted-key", f"{sign_key}.pub")
    assert f"signed by {report['signed_by']}" in human.stdout
    assert "not checked" not in human.stdout


def test_the_stock_minisign_accepts_our_signatures(
    signed: Path, sign_key: Path, tmp_path: Path
) -> None:
    """The runbook's recipe, without fda-vault: unzip, minisign -V, sha256sum -c."""
    out = tmp_path / "check"
    subprocess.run(["unzip", "-q", str(signed), "-d", str(out)], check=True)
    for member in ("metadata.json", "checksums.txt"):
        checked = subprocess.run(
            [str(MINISIGN), "-V", "-p", f"{sign_key}.pub", "-m", str(out / member)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert checked.returncode == 0, checked.stderr
        assert "Trusted comment: fda-vault backup of " in checked.stdout
        assert checked.stdout.rstrip().endswith(member)
    subprocess.run(["sha256sum", "-c", "--quiet", "checksums.txt"], cwd=out, check=True)
    # ...and minisign refuses an altered checksums.txt.
    (out / "checksums.txt").write_bytes((out / "checksums.txt").read_bytes() + b"\n")
    refused = subprocess.run(
        [str(MINISIGN), "-V", "-p", f"{sign_key}.pub", "-m", str(out / "checksums.txt")],
        capture_output=True, check=False,
    )  # fmt: skip
    assert refused.returncode != 0


def test_keys_made_by_minisign_sign_and_ours_sign_with_minisign(
    cli: CliCall, projects_dir: Path, tmp_path: Path, sign_key: Path
) -> None:
    theirs = tmp_path / "minisign.key"
    subprocess.run(
        [str(MINISIGN), "-G", "-W", "-p", f"{theirs}.pub", "-s", str(theirs)],
        check=True, capture_output=True,
    )  # fmt: skip
    made = backup_json(
        cli, "--all", "--projects-dir", projects_dir, "--output-dir", tmp_path / "b",
        "--sign-key", theirs,
    )  # fmt: skip
    assert _verify(cli, Path(made["archive"]), Path(f"{theirs}.pub"))[0] == 0
    # The key from the environment, as a cron job or systemd unit sets it.
    by_env = cli(
        "backup", "--all", "--projects-dir", projects_dir, "--output-dir", tmp_path / "e",
        "--json", env={"FDA_VAULT_SIGN_KEY": str(theirs)},
    )  # fmt: skip
    assert by_env.exit_code == 0, by_env.stderr
    assert (
        json.loads(by_env.stdout)["signed_by"] == PublicKey.load(Path(f"{theirs}.pub")).key_id_text
    )
    # Our secret key file is minisign's too: minisign -S signs with it, and we check that.
    data = tmp_path / "note.txt"
    data.write_bytes(b"signed by minisign with an fda-vault key\n")
    subprocess.run(
        [str(MINISIGN), "-S", "-s", str(sign_key), "-m", str(data)], check=True,
        capture_output=True,
    )  # fmt: skip
    digest = prehash()
    digest.update(data.read_bytes())
    key = PublicKey.load(Path(f"{sign_key}.pub"))
    signature = Path(f"{data}.minisig").read_text()
    assert "note.txt" in key.check(signature, digest.digest(), data.read_bytes())


def test_the_wrong_key_is_refused(cli: CliCall, signed: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.key"
    assert cli("key", "generate", "--sign", other).exit_code == 0
    code, report = _verify(cli, signed, Path(f"{other}.pub"))
    assert code == 3
    problems = report["problems"]
    assert isinstance(problems, list)
    assert {p["path"] for p in problems} == {"metadata.json.minisig", "checksums.txt.minisig"}
    assert all(p["kind"] == "signature" and "signed by key" in p["detail"] for p in problems)


def test_an_unsigned_archive_is_refused_when_a_key_is_trusted(
    cli: CliCall, archive: Path, sign_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _verify(cli, archive)[0] == 0  # without --trusted-key: intact is enough
    monkeypatch.setenv("FDA_VAULT_TRUSTED_KEYS", f"{sign_key}.pub")
    code, report = _verify(cli, archive)
    assert code == 3
    assert "not signed" in json.dumps(report["problems"])


def test_a_manifest_edited_and_re_hashed_passes_every_sum_but_not_the_signature(
    cli: CliCall, signed: Path, sign_key: Path, tmp_path: Path
) -> None:
    """A forger changes a file's recorded mode and rebuilds the ZIP with correct CRCs:
    every SHA-256 still holds, so only the signature can tell."""
    with zipfile.ZipFile(signed) as zf:
        manifest = json.loads(zf.read("metadata.json"))
    manifest["files"][0]["mode"] = 0o777
    manifest["created_by"] = "fda-vault 0.1.0 (honest, really)"
    forged = rewrite_archive(
        signed, tmp_path / signed.name,
        replace={"metadata.json": json.dumps(manifest).encode()},
    )  # fmt: skip
    assert _verify(cli, forged)[0] == 0  # the sums alone accept it
    code, report = _verify(cli, forged, Path(f"{sign_key}.pub"))
    assert code == 3
    problems = report["problems"]
    assert isinstance(problems, list)
    assert [p["path"] for p in problems] == ["metadata.json.minisig"]
    assert "does not match" in problems[0]["detail"]


def test_swapping_the_two_signatures_is_refused(
    cli: CliCall, signed: Path, sign_key: Path, tmp_path: Path
) -> None:
    with zipfile.ZipFile(signed) as zf:
        first, second = zf.read("metadata.json.minisig"), zf.read("checksums.txt.minisig")
    swapped = rewrite_archive(
        signed, tmp_path / signed.name,
        replace={"metadata.json.minisig": second, "checksums.txt.minisig": first},
    )  # fmt: skip
    assert _verify(cli, swapped, Path(f"{sign_key}.pub"))[0] == 3


def test_key_files_are_never_overwritten_and_bad_keys_are_one_line(
    cli: CliCall, sign_key: Path, signed: Path, tmp_path: Path
) -> None:
    before = sign_key.read_bytes()
    again = cli("key", "generate", "--sign", sign_key)
    assert again.exit_code == 2 and "never overwritten" in again.stderr
    assert sign_key.read_bytes() == before
    assert (sign_key.stat().st_mode & 0o777) == 0o600
    junk = tmp_path / "junk.pub"
    junk.write_text("not a key\n")
    bad = cli("verify", signed, "--trusted-key", junk)
    assert bad.exit_code == 2
    assert bad.stderr.count("\n") == 1 and str(junk) in bad.stderr
    # A password-protected minisign key: said so, not a traceback.
    loaded = SigningKey.load(sign_key)
    lines = loaded.to_text().splitlines()
    import base64

    raw = bytearray(base64.b64decode(lines[1]))
    raw[2:4] = b"Sc"
    locked = tmp_path / "locked.key"
    locked.write_text(f"{lines[0]}\n{base64.b64encode(bytes(raw)).decode()}\n")
    refused = cli("backup", "--all", "--sign-key", locked)
    assert refused.exit_code == 2 and "password-protected" in refused.stderr


def test_an_encrypted_archive_is_signed_inside(
    cli: CliCall, projects_dir: Path, tmp_path: Path, sign_key: Path
) -> None:
    identity = tmp_path / "age.key"
    public = json.loads(cli("key", "generate", identity, "--json").stdout)["public_key"]
    made = backup_json(
        cli, "--all", "--projects-dir", projects_dir, "--output-dir", tmp_path / "enc",
        "--encrypt-to", public, "--sign-key", sign_key,
    )  # fmt: skip
    result = cli(
        "verify", made["archive"], "-i", identity, "--trusted-key", f"{sign_key}.pub", "--json"
    )
    assert result.exit_code == 0, result.stdout
    assert json.loads(result.stdout)["archives"][0]["signature_checked"] is True


def test_the_runbooks_minisign_recipe_runs_as_printed(
    signed: Path, sign_key: Path, tmp_path: Path
) -> None:
    from tests.test_runbook import _runbook_block_lines

    steps = _runbook_block_lines(r"^minisign -Vm .+$")
    assert len(steps) == 2
    out = tmp_path / "check"
    subprocess.run(["unzip", "-q", str(signed), "-d", str(out)], check=True)
    for step in steps:
        command = step.replace("~/.config/fda-vault/signing.key.pub", f"{sign_key}.pub")
        done = subprocess.run(
            ["/bin/sh", "-c", command], cwd=out, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, (command, done.stderr)
        assert "Signature and comment signature verified" in done.stdout
