"""Signed archives in minisign's format, so that ``minisign -V`` checks them without us.

A signed archive carries ``metadata.json.minisig`` and ``checksums.txt.minisig``: Ed25519
signatures (``cryptography``) of the BLAKE2b-512 of each member's bytes (minisign's
pre-hashed ``ED`` algorithm, its default since 0.10), each with a trusted comment that
names the member and the backup, itself signed. ``checksums.txt`` holds every file's
SHA-256 and ``metadata.json`` every file's size, mode and times, so the two signatures
cover every byte a restore writes.

Keys are minisign's files: a public key ``untrusted comment`` line and the base64 of
``"Ed" || key id (8 bytes) || public key (32)``; a secret key as ``minisign -G -W``
writes it (not protected by a password: it is meant for an unattended job, with the
file's mode 0600 and the disk's encryption as its protection). ``minisign -S -s`` signs
with our keys, and we sign with minisign's unencrypted ones.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from fda_vault._errors import UsageError
from fda_vault._fsio import os_failure, write_new_file

__all__ = [
    "SIGNATURE_SUFFIX",
    "GeneratedSigningKey",
    "PublicKey",
    "SigningKey",
    "check_signatures",
    "generate_signing_key",
    "prehash",
    "signature_key_id",
    "trusted_comment",
]

SIGNATURE_SUFFIX = ".minisig"
_ALG = b"Ed"  # a key's algorithm
_PREHASHED = b"ED"  # a signature of the BLAKE2b-512 of the data
_LEGACY = b"Ed"  # a signature of the data itself (older minisign); accepted when verifying
_KDF_NONE = b"\x00\x00"
_CHECKSUM_ALG = b"B2"
_MAX_FILE = 4096


def prehash() -> hashlib.blake2b:
    """A BLAKE2b-512 hasher: what an ``ED`` signature signs the digest of."""
    return hashlib.blake2b(digest_size=64)


def _key_id_text(key_id: bytes) -> str:
    # minisign prints the 8 bytes as one little-endian number in upper-case hex.
    return key_id[::-1].hex().upper()


def _read_small(path: Path, what: str) -> list[str]:
    try:
        with path.open("rb") as fp:
            raw = fp.read(_MAX_FILE + 1)
    except OSError as exc:
        raise os_failure(path, exc, f"cannot read the {what}") from None
    if len(raw) > _MAX_FILE:
        raise UsageError(path, f"not a minisign {what} (larger than {_MAX_FILE} bytes)")
    try:
        return raw.decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise UsageError(path, f"not a minisign {what} (not ASCII text)") from None


def _b64(line: str, path: object, what: str) -> bytes:
    try:
        return base64.b64decode(line.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise UsageError(path, f"not a minisign {what} (bad base64)") from None


@dataclass(frozen=True)
class PublicKey:
    """A trusted minisign public key."""

    key_id: bytes
    raw: bytes  # 32 bytes
    source: str

    @property
    def key_id_text(self) -> str:
        return _key_id_text(self.key_id)

    @classmethod
    def load(cls, path: Path) -> PublicKey:
        """Read a ``.pub`` file (``untrusted comment:`` line, then the key)."""
        lines = [line for line in _read_small(path, "public key") if line.strip()]
        body = lines[1] if lines and lines[0].startswith("untrusted comment:") else None
        if body is None or len(lines) != 2:
            raise UsageError(path, "not a minisign public key (two lines expected)")
        data = _b64(body, path, "public key")
        if len(data) != 42 or data[:2] != _ALG:
            raise UsageError(path, "not a minisign Ed25519 public key")
        return cls(data[2:10], data[10:], str(path))

    def to_text(self) -> str:
        body = base64.b64encode(_ALG + self.key_id + self.raw).decode()
        return f"untrusted comment: minisign public key {self.key_id_text}\n{body}\n"

    def check(self, signature: str, digest: bytes, data: bytes | None = None) -> str:
        """The trusted comment of ``signature`` (a ``.minisig`` text) when it signs the
        data of BLAKE2b-512 ``digest`` (``data`` too, for an old unhashed signature) with
        this key; ValueError saying why not."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        lines = signature.splitlines()
        if len(lines) < 4 or not lines[0].startswith("untrusted comment:"):
            raise ValueError("not a minisign signature")
        prefix = "trusted comment: "
        if not lines[2].startswith(prefix):
            raise ValueError("not a minisign signature (no trusted comment)")
        try:
            blob = base64.b64decode(lines[1].strip(), validate=True)
            global_sig = base64.b64decode(lines[3].strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("not a minisign signature (bad base64)") from None
        if len(blob) != 74 or len(global_sig) != 64:
            raise ValueError("not a minisign signature (wrong length)")
        algorithm, key_id, sig = blob[:2], blob[2:10], blob[10:]
        if key_id != self.key_id:
            raise ValueError(f"signed by key {_key_id_text(key_id)}, not {self.key_id_text}")
        if algorithm == _PREHASHED:
            message = digest
        elif algorithm == _LEGACY and data is not None:
            message = data
        else:
            raise ValueError("unsupported signature algorithm")
        key = Ed25519PublicKey.from_public_bytes(self.raw)
        comment = lines[2][len(prefix) :]
        try:
            key.verify(sig, message)
        except InvalidSignature:
            raise ValueError("the signature does not match the data (altered?)") from None
        try:
            key.verify(global_sig, sig + comment.encode())
        except InvalidSignature:
            raise ValueError("the trusted comment was altered") from None
        return comment


def signature_key_id(signature: str) -> str | None:
    """The key id a ``.minisig`` text names (unchecked), or None if it is not one."""
    lines = signature.splitlines()
    try:
        blob = base64.b64decode(lines[1].strip(), validate=True)
    except (IndexError, binascii.Error, ValueError):
        return None
    return _key_id_text(blob[2:10]) if len(blob) == 74 else None


@dataclass(frozen=True)
class SigningKey:
    """A minisign secret key (unencrypted), as ``minisign -G -W`` writes it."""

    key_id: bytes
    seed: bytes  # the Ed25519 private key (32 bytes)
    public: bytes  # 32 bytes
    source: str

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        lines = [line for line in _read_small(path, "secret key") if line.strip()]
        if len(lines) != 2 or not lines[0].startswith("untrusted comment:"):
            raise UsageError(path, "not a minisign secret key (two lines expected)")
        data = _b64(lines[1], path, "secret key")
        if len(data) != 158 or data[:2] != _ALG or data[4:6] != _CHECKSUM_ALG:
            raise UsageError(path, "not a minisign Ed25519 secret key")
        if data[2:4] != _KDF_NONE:
            raise UsageError(
                path,
                "a password-protected minisign key; an unattended backup needs one without "
                "(`fda-vault key generate --sign FILE`, or `minisign -G -W`)",
            )
        key_id, secret = data[54:62], data[62:126]
        seed, public = secret[:32], secret[32:]
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        derived = (
            Ed25519PrivateKey.from_private_bytes(seed)
            .public_key()
            .public_bytes(Encoding.Raw, PublicFormat.Raw)
        )
        if derived != public:
            raise UsageError(path, "a damaged minisign secret key (its halves disagree)")
        return cls(key_id, seed, public, str(path))

    @property
    def public_key(self) -> PublicKey:
        return PublicKey(self.key_id, self.public, f"{self.source} (its public half)")

    def sign(self, digest: bytes, trusted_comment: str) -> str:
        """A ``.minisig`` text signing the data of BLAKE2b-512 ``digest``."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if "\n" in trusted_comment or "\r" in trusted_comment:
            raise ValueError("a trusted comment is one line")
        key = Ed25519PrivateKey.from_private_bytes(self.seed)
        sig = key.sign(digest)
        global_sig = key.sign(sig + trusted_comment.encode())
        return (
            f"untrusted comment: signature from fda-vault key {self.public_key.key_id_text}\n"
            f"{base64.b64encode(_PREHASHED + self.key_id + sig).decode()}\n"
            f"trusted comment: {trusted_comment}\n"
            f"{base64.b64encode(global_sig).decode()}\n"
        )

    def to_text(self) -> str:
        secret = self.key_id + self.seed + self.public
        checksum = hashlib.blake2b(_ALG + secret, digest_size=32).digest()
        body = _ALG + _KDF_NONE + _CHECKSUM_ALG + bytes(32 + 8 + 8) + secret + checksum
        return f"untrusted comment: minisign secret key\n{base64.b64encode(body).decode()}\n"


class GeneratedSigningKey(BaseModel):
    """A new signing key pair."""

    secret_key_file: str = Field(description="the secret key (mode 0600): give --sign-key")
    public_key_file: str = Field(description="the public key: give --trusted-key, minisign -p")
    key_id: str = Field(description="minisign's key id")


def generate_signing_key(path: Path) -> GeneratedSigningKey:
    """Write a new Ed25519 key pair: the secret to ``path`` (mode 0600), the public key to
    ``path.pub``; neither ever overwrites a file."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key = SigningKey(secrets.token_bytes(8), seed, public, str(path))
    public_path = path.with_name(path.name + ".pub")
    if public_path.exists():
        raise UsageError(public_path, "exists already; a key file is never overwritten")
    write_new_file(path, key.to_text(), 0o600)
    try:
        write_new_file(public_path, key.public_key.to_text(), 0o644)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return GeneratedSigningKey(
        secret_key_file=str(path),
        public_key_file=str(public_path),
        key_id=key.public_key.key_id_text,
    )


def check_signatures(
    members: dict[str, tuple[bytes, str | None]], trusted: list[PublicKey]
) -> tuple[str, list[tuple[str, str]]]:
    """Check each signed member against the trusted keys: ``members`` maps a member's
    name to (its bytes, the text of its ``.minisig`` or None). Returns (the key id that
    signed them, [(member, why not)] for each that fails)."""
    problems: list[tuple[str, str]] = []
    signer = ""
    for name, (data, signature) in members.items():
        if signature is None:
            problems.append((name + SIGNATURE_SUFFIX, "missing: the archive is not signed"))
            continue
        digest = prehash()
        digest.update(data)
        why = "no trusted key given"
        for key in trusted:
            try:
                comment = key.check(signature, digest.digest(), data)
            except ValueError as exc:
                why = str(exc)
                continue
            if not comment.endswith(f": {name}"):
                why = f"its trusted comment names another member ({comment!r})"
                continue
            signer = key.key_id_text
            break
        else:
            problems.append((name + SIGNATURE_SUFFIX, why))
    return signer, problems


def trusted_comment(backup_timestamp: str, member: str) -> str:
    """What a signature's trusted comment says: the backup, then the member it signs."""
    return f"fda-vault backup of {backup_timestamp}: {member}"
