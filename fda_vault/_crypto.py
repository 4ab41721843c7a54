"""Encryption in standard formats: age (keys) and OpenPGP AES-256 (a passphrase).

An encrypted backup is the very ZIP an unencrypted one would be, passed through one of
two standard encryptions, so that it opens without fda-vault:

- **age** (C2SP age v1, through ``pyrage``): X25519 recipients (``age1…``) and
  ``ssh-ed25519`` keys, any number of them; ``age -d -i KEY X.zip.age > X.zip``.
- **OpenPGP symmetric, AES-256**, through the system's ``gpg``: ``gpg -d X.zip.gpg``. The
  passphrase reaches ``gpg`` through a pipe (``--passphrase-fd``), never a command line,
  with a private, temporary ``GNUPGHOME`` whose agent is stopped afterwards (nothing is
  cached, the user's keyring is never touched).

Both are streams: :class:`Encryptor` takes the plaintext by ``write`` and writes the
ciphertext to a file; :func:`decrypt_stream` turns ciphertext pieces into plaintext
pieces. Neither holds more than a few MiB. This module knows no archive or location.

:class:`SealedScratch` is private scratch space on disk for bytes that must wait (a ZIP
entry whose header is patched when it ends; the plaintext of an archive being read at
random offsets): each 1 MiB block is sealed with AES-256-GCM under a key that exists only
in this process's memory, so what reaches the disk, or stays there after a ``kill -9``,
is unreadable, and the file has no name (it is unlinked at once).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from fda_vault._errors import DecryptError, IntegrityError, OperationError, UsageError

__all__ = [
    "AGE_SUFFIX",
    "GPG_SUFFIX",
    "NO_KEYS",
    "Encryption",
    "Encryptor",
    "Keys",
    "Kind",
    "SealedScratch",
    "decrypt_bytes",
    "decrypt_stream",
    "encrypt_bytes",
    "encryption_of",
    "generate_identity",
    "new_identity",
    "parse_recipients",
    "read_passphrase",
]

Kind = Literal["age", "gpg"]
AGE_SUFFIX = ".age"
GPG_SUFFIX = ".gpg"
_PIPE_SIZE = 1 << 20
_MAX_KEY_FILE = 1 << 20  # a recipients, identity or passphrase file larger is not one


def encryption_of(name: str) -> Kind | None:
    """``age`` or ``gpg`` when the file name ends with ``.age`` / ``.gpg``."""
    if name.endswith(AGE_SUFFIX):
        return "age"
    if name.endswith(GPG_SUFFIX):
        return "gpg"
    return None


def _pyrage() -> Any:
    try:
        import pyrage
    except ImportError:  # pragma: no cover - a dependency; only a broken install lacks it
        raise UsageError(
            "age encryption", "needs the pyrage package (pip install pyrage)"
        ) from None
    return pyrage


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        with open(path, "rb") as fp:
            data = fp.read(_MAX_KEY_FILE + 1)
    except FileNotFoundError:
        raise UsageError(path, f"no such {what} file", reason="not_found") from None
    except IsADirectoryError:
        raise UsageError(path, f"not a {what} file (a folder)", reason="not_found") from None
    except OSError as exc:
        from fda_vault._fsio import os_failure

        raise os_failure(path, exc, f"cannot read the {what} file") from None
    if len(data) > _MAX_KEY_FILE:
        raise UsageError(path, f"too large to be a {what} file")
    return data


# ---------------------------------------------------------------- recipients and keys


def _recipient(text: str) -> Any:
    """A pyrage recipient from one ``age1…`` or ``ssh-ed25519 …`` line (ValueError if not)."""
    pyrage = _pyrage()
    text = text.strip()
    try:
        if text.startswith("age1"):
            return pyrage.x25519.Recipient.from_str(text)
        if text.startswith(("ssh-ed25519 ", "ssh-rsa ")):
            return pyrage.ssh.Recipient.from_str(text)
    except pyrage.RecipientError as exc:
        raise ValueError(f"not a valid recipient ({exc})") from None
    raise ValueError("not an age recipient (age1…) or an ssh-ed25519 public key")


def parse_recipients(values: Sequence[str]) -> tuple[tuple[str, ...], tuple[Any, ...]]:
    """The recipients given to ``--encrypt-to``: each an ``age1…`` key, an
    ``ssh-ed25519 …`` line, or ``@FILE`` with one per line (blank lines and ``#``
    comments skipped, as ``age -R`` reads them). (texts, pyrage recipients); UsageError
    naming the value, or the file and line, that is not one."""
    texts: list[str] = []
    parsed: list[Any] = []
    for value in values:
        if value.startswith("@"):
            path = Path(value[1:]).expanduser()
            lines = _read_key_file(path, "recipients").decode("utf-8", "replace").splitlines()
            found = 0
            for number, line in enumerate(lines, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                try:
                    parsed.append(_recipient(line))
                except ValueError as exc:
                    raise UsageError(f"--encrypt-to {value}: line {number}", str(exc)) from None
                texts.append(line)
                found += 1
            if not found:
                raise UsageError(f"--encrypt-to {value}", "the file holds no recipient")
            continue
        try:
            parsed.append(_recipient(value))
        except ValueError as exc:
            shown = value if len(value) <= 80 else value[:77] + "..."
            raise UsageError(f"--encrypt-to {shown}", str(exc)) from None
        texts.append(value.strip())
    return tuple(texts), tuple(parsed)


def read_passphrase(path: Path) -> bytes:
    """The passphrase in ``path``: its first line, without the line end (as
    ``gpg --passphrase-file`` reads it); UsageError when it is missing or empty."""
    data = _read_key_file(path, "passphrase")
    passphrase = data.split(b"\n", 1)[0].rstrip(b"\r")
    if not passphrase:
        raise UsageError(path, "the passphrase file is empty")
    return passphrase


def _identities(path: Path) -> list[Any]:
    """The age identities of one file: ``AGE-SECRET-KEY-1…`` lines (``age-keygen``'s
    format, comments skipped), or an OpenSSH ed25519/RSA private key."""
    pyrage = _pyrage()
    data = _read_key_file(path, "identity")
    if b"-----BEGIN OPENSSH PRIVATE KEY-----" in data:
        try:
            return [pyrage.ssh.Identity.from_buffer(data)]
        except Exception as exc:  # pyrage raises its own types and ValueError
            raise UsageError(path, f"not a usable ssh private key ({exc})") from None
    found = []
    for number, raw in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            found.append(pyrage.x25519.Identity.from_str(line))
        except Exception:
            raise UsageError(
                f"{path}: line {number}", "not an age identity (AGE-SECRET-KEY-1…)"
            ) from None
    if not found:
        raise UsageError(path, "the identity file holds no key")
    return found


def new_identity() -> Any:
    """A new age identity (a pyrage object), to be kept in memory only."""
    return _pyrage().x25519.Identity.generate()


def generate_identity() -> tuple[str, str]:
    """A new age identity: (secret ``AGE-SECRET-KEY-1…``, public ``age1…``)."""
    identity = _pyrage().x25519.Identity.generate()
    return str(identity), str(identity.to_public())


@dataclass(frozen=True)
class Encryption:
    """How new archives are encrypted: to age ``recipients``, or with the passphrase in
    ``passphrase_file`` (OpenPGP, AES-256). ``recipient_texts`` is what the result shows
    (public keys only)."""

    recipient_texts: tuple[str, ...] = ()
    recipients: tuple[Any, ...] = field(default=(), repr=False)
    passphrase_file: Path | None = None

    @property
    def kind(self) -> Kind:
        return "age" if self.recipients else "gpg"

    @property
    def suffix(self) -> str:
        return AGE_SUFFIX if self.kind == "age" else GPG_SUFFIX

    @classmethod
    def of(cls, recipients: Sequence[str], passphrase_file: Path | None) -> Encryption | None:
        """The encryption the options ask for (None: none); UsageError for both at once,
        a bad recipient or an unreadable passphrase file."""
        if recipients and passphrase_file is not None:
            raise UsageError(
                "--encrypt-to and --passphrase-file",
                "choose one: age recipients or a passphrase (OpenPGP AES-256)",
            )
        if recipients:
            texts, parsed = parse_recipients(recipients)
            return cls(recipient_texts=texts, recipients=parsed)
        if passphrase_file is not None:
            read_passphrase(passphrase_file)  # refused now, not after the backup
            _gpg_binary()
            return cls(passphrase_file=passphrase_file)
        return None


@dataclass(frozen=True)
class Keys:
    """What may open encrypted archives: age identity files, a passphrase file, and
    identities that exist only in memory (a backup's own, to check what it wrote)."""

    identity_files: tuple[Path, ...] = ()
    passphrase_file: Path | None = None
    own: tuple[Any, ...] = field(default=(), repr=False)

    def age_identities(self, archive: object) -> list[Any]:
        """Every age identity, or DecryptError naming ``archive`` when there is none."""
        found = list(self.own)
        for path in self.identity_files:
            found.extend(_identities(path))
        if not found:
            raise DecryptError(
                archive,
                "cannot decrypt: no age identity given (--identity FILE or "
                "FDA_VAULT_IDENTITY_FILE)",
                reason="no_key",
            )
        return found

    def passphrase(self, archive: object) -> bytes:
        """The passphrase, or DecryptError naming ``archive`` when none is given."""
        if self.passphrase_file is None:
            raise DecryptError(
                archive,
                "cannot decrypt: no passphrase given (--passphrase-file FILE or "
                "FDA_VAULT_PASSPHRASE_FILE)",
                reason="no_key",
            )
        return read_passphrase(self.passphrase_file)

    def with_own(self, identity: Any) -> Keys:
        return Keys(self.identity_files, self.passphrase_file, (*self.own, identity))


NO_KEYS = Keys()


# ---------------------------------------------------------------- gpg as a child


def _gpg_binary() -> str:
    found = shutil.which("gpg")
    if found is None:
        raise UsageError(
            "--passphrase-file", "needs GnuPG's gpg program (apt install gpg, brew install gnupg)"
        )
    return found


class _Gpg:
    """One ``gpg`` run with a private home, the passphrase on a pipe and its status on
    another; :meth:`close` waits for it and stops its agent."""

    def __init__(self, passphrase: bytes, args: list[str]) -> None:
        self.home = tempfile.mkdtemp(prefix="fda-vault-gpg-")
        pass_r, pass_w = os.pipe()
        self._status_r, status_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [
                    _gpg_binary(), "--homedir", self.home, "--batch", "--quiet", "--no-tty",
                    "--no-options", "--pinentry-mode", "loopback", "--no-symkey-cache",
                    "--passphrase-fd", str(pass_r), "--status-fd", str(status_w), *args,
                ],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=(pass_r, status_w),
            )  # fmt: skip
        finally:
            os.close(pass_r)
            os.close(status_w)
        with os.fdopen(pass_w, "wb") as fp:
            fp.write(passphrase + b"\n")
        self.status = b""
        self.stderr = b""
        self._readers = [
            threading.Thread(target=self._drain_status, daemon=True),
            threading.Thread(target=self._drain_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _drain_status(self) -> None:
        with os.fdopen(self._status_r, "rb") as fp:
            self.status = fp.read()

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()

    def close(self) -> int:
        """Wait for gpg (its exit status), stop its agent, remove its home."""
        code = self.proc.wait()
        for reader in self._readers:
            reader.join()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                [shutil.which("gpgconf") or "gpgconf", "--homedir", self.home, "--kill",
                 "gpg-agent"],
                capture_output=True, timeout=10, check=False,
            )  # fmt: skip
        shutil.rmtree(self.home, ignore_errors=True)
        return code

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()

    def failure(self, archive: object) -> Exception:
        """The error a failed decryption means: wrong passphrase (5) or damage (3)."""
        if b"BAD_PASSPHRASE" in self.status:
            return DecryptError(
                archive, "cannot decrypt: the passphrase is wrong", reason="wrong_key"
            )
        if b"NO_DATA" in self.status or b"NODATA" in self.status:
            return IntegrityError(archive, "not an OpenPGP file (damaged or not encrypted)")
        lines = [ln for ln in self.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        detail = lines[-1].removeprefix("gpg: ") if lines else "gpg failed"
        return IntegrityError(archive, f"the OpenPGP data is damaged or tampered with ({detail})")


# ---------------------------------------------------------------- encrypting


class Encryptor:
    """A write-only stream: plaintext in by :meth:`write`, ciphertext out to ``out`` (by
    ``out.write`` only, in order) from a thread of its own. :meth:`close` finishes the
    ciphertext and raises what went wrong; :meth:`abort` drops it."""

    def __init__(self, encryption: Encryption, out: IO[bytes] | Any, *, own: Any = None) -> None:
        self._error: BaseException | None = None
        self._out = out
        self._gpg: _Gpg | None = None
        if encryption.kind == "age":
            recipients = list(encryption.recipients) + ([own.to_public()] if own else [])
            read_fd, self._write_fd = os.pipe()
            _widen_pipe(self._write_fd)
            reader = os.fdopen(read_fd, "rb", buffering=_PIPE_SIZE)
            self._thread = threading.Thread(
                target=self._run_age, args=(reader, recipients), daemon=True
            )
        else:
            assert encryption.passphrase_file is not None
            self._gpg = _Gpg(
                read_passphrase(encryption.passphrase_file),
                ["--symmetric", "--cipher-algo", "AES256", "--compress-algo", "none",
                 "--s2k-digest-algo", "SHA512", "--output", "-"],
            )  # fmt: skip
            assert self._gpg.proc.stdin is not None
            self._write_fd = self._gpg.proc.stdin.fileno()
            self._thread = threading.Thread(target=self._run_gpg, daemon=True)
        self._thread.start()

    def _run_age(self, reader: IO[bytes], recipients: list[Any]) -> None:
        try:
            with reader:
                _pyrage().encrypt_io(reader, self._out, recipients)
        except BaseException as exc:
            self._error = exc

    def _run_gpg(self) -> None:
        assert self._gpg is not None and self._gpg.proc.stdout is not None
        try:
            stdout = self._gpg.proc.stdout
            while chunk := stdout.read(_PIPE_SIZE):
                self._out.write(chunk)
        except BaseException as exc:
            self._error = exc
            self._gpg.kill()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = os.write(self._write_fd, view)
            except BrokenPipeError:
                self._thread.join()
                raise self._failure() from None
            view = view[sent:]

    def _failure(self) -> BaseException:
        if self._error is not None:
            return self._error
        if self._gpg is not None:
            return OperationError("gpg", self._gpg.stderr.decode("utf-8", "replace").strip())
        return OperationError("age", "the encryption stopped")

    def _end_input(self) -> None:
        if self._gpg is not None:
            assert self._gpg.proc.stdin is not None
            with contextlib.suppress(OSError):
                self._gpg.proc.stdin.close()
        else:
            with contextlib.suppress(OSError):
                os.close(self._write_fd)
        self._write_fd = -1

    def close(self) -> None:
        """End the plaintext and wait for the last ciphertext byte to be written."""
        self._end_input()
        self._thread.join()
        if self._gpg is not None:
            code = self._gpg.close()
            if code != 0 and self._error is None:
                raise self._failure()
        if self._error is not None:
            if isinstance(self._error, OSError | OperationError | KeyboardInterrupt):
                raise self._error
            raise OperationError("encryption", str(self._error)) from self._error

    def abort(self) -> None:
        """Stop, dropping what is not written yet (after a failure or Ctrl-C)."""
        if self._write_fd < 0:
            return
        if self._gpg is not None:
            self._gpg.kill()
        self._end_input()
        self._thread.join()
        if self._gpg is not None:
            self._gpg.close()


def _widen_pipe(fd: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)


def encrypt_bytes(encryption: Encryption, data: bytes, *, own: Any = None) -> bytes:
    """``data`` encrypted whole (a small file: an archive's index)."""
    parts: list[bytes] = []

    class _Collect:
        def write(self, chunk: bytes) -> int:
            parts.append(bytes(chunk))
            return len(chunk)

    encryptor = Encryptor(encryption, _Collect(), own=own)
    try:
        encryptor.write(data)
    except BaseException:
        encryptor.abort()
        raise
    encryptor.close()
    return b"".join(parts)


# ---------------------------------------------------------------- decrypting


class _PiecesReader:
    """A readable binary file over an iterator of pieces (what pyrage pulls from)."""

    def __init__(self, pieces: Iterable[bytes], stop: threading.Event) -> None:
        self._pieces = iter(pieces)
        self._stop = stop
        self._buffer = memoryview(b"")
        self.error: BaseException | None = None

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._stop.is_set():
            return b""
        if not self._buffer:
            try:
                self._buffer = memoryview(next(self._pieces))
            except StopIteration:
                return b""
            except BaseException as exc:  # a read error of the archive: ends the stream
                self.error = exc
                return b""
        if size < 0 or size >= len(self._buffer):
            out, self._buffer = bytes(self._buffer), memoryview(b"")
            return out
        out, self._buffer = bytes(self._buffer[:size]), self._buffer[size:]
        return out

    def readinto(self, target: Any) -> int:
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)


class _Sink:
    def __init__(self, accept: Callable[[bytes], None]) -> None:
        self._accept = accept
        self.error: BaseException | None = None

    def write(self, data: bytes) -> int:
        try:
            self._accept(bytes(data))
        except BaseException as exc:
            self.error = exc
            raise
        return len(data)

    def flush(self) -> None:
        return None


def _age_failure(archive: object, exc: BaseException) -> Exception:
    text = str(exc)
    if "No matching keys" in text:
        return DecryptError(
            archive, "cannot decrypt: the age identity given is not one of its recipients",
            reason="wrong_key",
        )  # fmt: skip
    if "Header is invalid" in text or "fill whole buffer" in text:
        return IntegrityError(archive, "not an age file (damaged or not encrypted)")
    if "truncated" in text:
        return IntegrityError(archive, "the age file is truncated")
    return IntegrityError(archive, f"the age data is damaged or tampered with ({text})")


def decrypt_stream(
    kind: Kind,
    keys: Keys,
    pieces: Iterable[bytes],
    accept: Callable[[bytes], None],
    archive: object,
    stop: threading.Event | None = None,
) -> None:
    """Decrypt ``pieces`` (the ciphertext in order), handing each plaintext piece to
    ``accept``; returns when the whole ciphertext is authenticated. DecryptError (no key,
    wrong key or passphrase), IntegrityError (damaged, truncated, tampered with), or what
    reading ``pieces`` or ``accept`` raised. ``stop`` set: ends early, silently."""
    stop = stop or threading.Event()
    reader = _PiecesReader(pieces, stop)
    sink = _Sink(accept)
    if kind == "age":
        identities = keys.age_identities(archive)
        try:
            _pyrage().decrypt_io(reader, sink, identities)
        except Exception as exc:
            if stop.is_set():
                return
            raise (reader.error or sink.error or _age_failure(archive, exc)) from None
        if reader.error is not None:
            raise reader.error
        return
    gpg = _Gpg(keys.passphrase(archive), ["--decrypt", "--output", "-"])
    failed: list[BaseException] = []

    def feed() -> None:
        assert gpg.proc.stdin is not None
        try:
            with gpg.proc.stdin:
                while piece := reader.read(_PIPE_SIZE):
                    gpg.proc.stdin.write(piece)
        except BrokenPipeError:
            pass  # gpg stopped: its status says why
        except BaseException as exc:
            failed.append(exc)
            gpg.kill()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        assert gpg.proc.stdout is not None
        while chunk := gpg.proc.stdout.read(_PIPE_SIZE):
            accept(chunk)
    except BaseException:
        gpg.kill()
        stop.set()
        feeder.join()
        gpg.close()
        raise
    feeder.join()
    code = gpg.close()
    if stop.is_set():
        return
    if reader.error is not None:
        raise reader.error
    if failed:
        raise failed[0]
    if code != 0:
        raise gpg.failure(archive)


def decrypt_bytes(kind: Kind, keys: Keys, data: bytes, archive: object) -> bytes:
    """A small encrypted file decrypted whole."""
    parts: list[bytes] = []
    decrypt_stream(kind, keys, [data], parts.append, archive)
    return b"".join(parts)


# ---------------------------------------------------------------- sealed scratch


_BLOCK = 1 << 20
_TAG = 16
_NONCE = 12


class SealedScratch:
    """Append-only scratch bytes on disk, sealed block by block (AES-256-GCM, a key made
    here and kept in memory only; the file is unlinked as soon as it is open), read back
    at any offset by any thread. A reader past the end waits until the bytes are
    appended or :meth:`end` is called (then it gets fewer)."""

    def __init__(self, folder: str | None = None, cache_blocks: int = 8) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))
        self._file = tempfile.TemporaryFile(dir=folder, prefix="fda-vault-sealed-")  # noqa: SIM115
        self._fd = self._file.fileno()
        self._pending = bytearray()  # the last, partial block (plaintext, in memory)
        self._blocks = 0
        self.size = 0
        self._ended = False
        self._failure: BaseException | None = None
        self._cond = threading.Condition()
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cache_blocks = cache_blocks

    def _nonce(self, index: int) -> bytes:
        return index.to_bytes(_NONCE, "big")  # each block sealed once under this key

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes at the end (one writer)."""
        with self._cond:
            self._pending += data
            while len(self._pending) >= _BLOCK:
                self._seal(bytes(self._pending[:_BLOCK]))
                del self._pending[:_BLOCK]
            self.size += len(data)
            self._cond.notify_all()

    def _seal(self, block: bytes) -> None:
        sealed = self._aead.encrypt(self._nonce(self._blocks), block, None)
        offset = self._blocks * (_BLOCK + _TAG)
        view = memoryview(sealed)
        while view:
            view = view[os.pwrite(self._fd, view, offset + len(sealed) - len(view)) :]
        self._blocks += 1

    def end(self, failure: BaseException | None = None) -> None:
        """No more bytes (``failure``: why not; readers waiting then raise it)."""
        with self._cond:
            self._ended = True
            self._failure = failure
            self._cond.notify_all()

    def wait_end(self) -> BaseException | None:
        """Wait for :meth:`end`; the failure it was given."""
        with self._cond:
            while not self._ended:
                self._cond.wait()
            return self._failure

    def _block(self, index: int) -> bytes:
        with self._cond:
            cached = self._cache.get(index)
            if cached is not None:
                self._cache.move_to_end(index)
                return cached
            if index >= self._blocks:
                return bytes(self._pending)  # the partial last block, a copy
        size = _BLOCK + _TAG
        sealed = os.pread(self._fd, size, index * size)
        block = self._aead.decrypt(self._nonce(index), sealed, None)
        with self._cond:
            self._cache[index] = block
            if len(self._cache) > self._cache_blocks:
                self._cache.popitem(last=False)
        return block

    def pread(self, length: int, offset: int) -> bytes:
        """Up to ``length`` bytes at ``offset``, waiting for them if they are not yet
        appended; the failure given to :meth:`end` if they never will be."""
        want = offset + length
        with self._cond:
            while self.size < want and not self._ended:
                self._cond.wait()
            if self.size < want and self._failure is not None:
                raise self._failure
            want = min(want, self.size)
        out = bytearray()
        while offset < want:
            index, at = divmod(offset, _BLOCK)
            block = self._block(index)
            piece = block[at : at + want - offset]
            if not piece:
                break
            out += piece
            offset += len(piece)
        return bytes(out)

    def iter_from(self, offset: int = 0) -> Iterator[bytes]:
        """Every byte from ``offset`` to the end (after :meth:`end`), 1 MiB at a time."""
        while offset < self.size:
            piece = self.pread(_BLOCK - offset % _BLOCK, offset)
            if not piece:
                return
            offset += len(piece)
            yield piece

    def close(self) -> None:
        self._file.close()
        self._cache.clear()
