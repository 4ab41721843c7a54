"""Encryption in standard formats: age (keys) and OpenPGP AES-256 (a passphrase).

An encrypted backup is the very ZIP an unencrypted one would be, passed through one of
two standard encryptions, so that it opens without fda-vault:

- **age** (C2SP age v1): X25519 recipients (``age1…``) and ``ssh-ed25519`` keys, any
  number of them; ``age -d -i KEY X.zip.age > X.zip``. Streams go through the ``age``
  program when it is installed (a process of its own, no GIL held: the 288 MB benchmark
  archive decrypted in 0.30 s against pyrage's 0.48 s, encrypted in 0.22 s against
  0.44 s, and a verify of it 1.6-1.75 s against 3.36 s), else through ``pyrage``
  in-process; keys are always parsed, checked and made with pyrage.
- **OpenPGP symmetric, AES-256**, through the system's ``gpg``: ``gpg -d X.zip.gpg``. The
  passphrase reaches ``gpg`` through a pipe (``--passphrase-fd``), never a command line,
  with a private, temporary ``GNUPGHOME`` whose agent is stopped afterwards (nothing is
  cached, the user's keyring is never touched).

Both are streams: :class:`Encryptor` takes the plaintext by ``write`` and writes the
ciphertext to a file; :func:`decrypt_stream` turns ciphertext pieces into plaintext
pieces. Neither holds more than a few MiB. This module knows no archive or location.

:class:`SealedScratch` is private scratch space on disk for bytes that must wait (the
plaintext of an archive being read at random offsets): each 1 MiB block is sealed with
AES-256-GCM under a key that exists only in this process's memory, so what reaches the
disk, or stays there after a ``kill -9``, is unreadable, and the file has no name (it
is unlinked at once).
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
from fda_vault._parallel import process_alive

__all__ = [
    "AGE_SUFFIX",
    "GPG_SUFFIX",
    "NO_KEYS",
    "Encryption",
    "Encryptor",
    "Forgotten",
    "Keys",
    "Kind",
    "SealedScratch",
    "age_binary",
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
_READ_SIZE = 256 << 10  # what one read of a child's output takes (smaller: less RSS)
_MAX_KEY_FILE = 1 << 20  # a recipients, identity or passphrase file larger is not one
_MAX_PASSPHRASE = 4096  # it goes to gpg on a pipe, whose buffer takes it whole


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
    if len(passphrase) > _MAX_PASSPHRASE:
        raise UsageError(path, f"the passphrase is longer than {_MAX_PASSPHRASE} bytes")
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


# ---------------------------------------------------------------- age and gpg as children


def _gpg_binary() -> str:
    found = shutil.which("gpg")
    if found is None:
        raise UsageError(
            "--passphrase-file", "needs GnuPG's gpg program (apt install gpg, brew install gnupg)"
        )
    return found


def age_binary() -> str | None:
    """The ``age`` program, if installed: it streams in a process of its own, 2-3x faster
    than pyrage here and without holding this process's GIL; pyrage otherwise."""
    return shutil.which("age")


class _Child:
    """One run of ``age`` or ``gpg``: data on stdin and stdout, each secret on a pipe of
    its own (its descriptor replaces ``{fd0}``, ``{fd1}``… in ``argv``), gpg's status on
    another (``{status}``), stderr kept. :meth:`close` waits and cleans up."""

    def __init__(
        self,
        kind: Kind,
        argv: list[str],
        secrets: Sequence[bytes] = (),
        *,
        home: str | None = None,
        stdin: Path | None = None,
    ) -> None:
        self.kind = kind
        self.home = home
        inherited: list[int] = []
        names: dict[str, str] = {}
        writers: list[tuple[int, bytes]] = []
        for number, secret in enumerate(secrets):
            read_fd, write_fd = os.pipe()
            inherited.append(read_fd)
            names[f"fd{number}"] = str(read_fd)
            writers.append((write_fd, secret))
        self._status_r = -1
        if "{status}" in " ".join(argv):
            self._status_r, status_w = os.pipe()
            inherited.append(status_w)
            names["status"] = str(status_w)
        try:
            for write_fd, secret in writers:  # small: the pipe takes it whole
                with os.fdopen(write_fd, "wb") as fp:
                    fp.write(secret)
            source = open(stdin, "rb") if stdin is not None else None  # noqa: SIM115
            try:
                self.proc = subprocess.Popen(
                    [arg.format(**names) for arg in argv],
                    stdin=source or subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, pass_fds=inherited,
                )  # fmt: skip
            finally:
                if source is not None:
                    source.close()  # the child has its own descriptor
        finally:
            for fd in inherited:
                os.close(fd)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                _widen_pipe(stream.fileno())
        self.status = b""
        self.stderr = b""
        self._readers = [threading.Thread(target=self._drain_stderr, daemon=True)]
        if self._status_r >= 0:
            self._readers.append(threading.Thread(target=self._drain_status, daemon=True))
        for reader in self._readers:
            reader.start()

    def _drain_status(self) -> None:
        with os.fdopen(self._status_r, "rb") as fp:
            self.status = fp.read()

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()

    def close(self) -> int:
        """Wait for the program (its exit status); a gpg run's agent is stopped and its
        home removed."""
        code = self.proc.wait()
        for reader in self._readers:
            reader.join()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if self.home is not None:
            _remove_gpg_home(Path(self.home))
            self.home = None
        return code

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()

    def _last_line(self, default: str) -> str:
        lines = [
            line.removeprefix("gpg: ").removeprefix("age: error: ")
            for line in self.stderr.decode("utf-8", "replace").splitlines()
            if line.strip() and "report unexpected" not in line
        ]
        return lines[-1] if lines else default

    def failure(self, archive: object) -> Exception:
        """The error a failed decryption means: no such key or a wrong passphrase (5),
        or damage (3)."""
        text = self.stderr.decode("utf-8", "replace")
        if self.kind == "age":
            if "no identity matched" in text:
                return _wrong_identity(archive)
            if "failed to read header" in text:
                return IntegrityError(archive, "not an age file (damaged or not encrypted)")
            detail = self._last_line("age failed")
            return IntegrityError(archive, f"the age data is damaged or tampered with ({detail})")
        if b"BAD_PASSPHRASE" in self.status:
            return DecryptError(
                archive, "cannot decrypt: the passphrase is wrong", reason="wrong_key"
            )
        if b"NO_DATA" in self.status or b"NODATA" in self.status:
            return IntegrityError(archive, "not an OpenPGP file (damaged or not encrypted)")
        detail = self._last_line("gpg failed")
        return IntegrityError(archive, f"the OpenPGP data is damaged or tampered with ({detail})")


_GPG_HOME = "fda-vault-gpg-"


def _gpg(passphrase: bytes, args: list[str], stdin: Path | None = None) -> _Child:
    """gpg with a private, temporary home (nothing cached, the user's keyring untouched)
    and the passphrase on a pipe."""
    _sweep_gpg_homes()
    home = tempfile.mkdtemp(prefix=f"{_GPG_HOME}{os.getpid()}-", dir=_gpg_homes_parent())
    argv = [
        _gpg_binary(), "--homedir", home, "--batch", "--quiet", "--no-tty", "--no-options",
        "--pinentry-mode", "loopback", "--no-symkey-cache", "--passphrase-fd", "{fd0}",
        "--status-fd", "{status}", *args,
    ]  # fmt: skip
    try:
        return _Child("gpg", argv, [passphrase + b"\n"], home=home, stdin=stdin)
    except BaseException:
        shutil.rmtree(home, ignore_errors=True)
        raise


def _gpg_homes_parent() -> str:
    """Where gpg homes go: the temporary folder, unless its path is so long that the
    agent's socket in it would pass the 108 bytes a socket path may have (gpg then fails
    with "No agent running"); /tmp then."""
    folder = tempfile.gettempdir()
    if len(folder) > 48 and os.access("/tmp", os.W_OK):  # noqa: S108 (mkdtemp: 0700)
        return "/tmp"  # noqa: S108
    return folder


def _sweep_gpg_homes() -> None:
    """Remove the gpg homes (and stop the agents) of fda-vault runs that died without
    cleaning up (``kill -9``): each home's name carries its run's pid."""
    for home in Path(_gpg_homes_parent()).glob(f"{_GPG_HOME}*"):
        pid = home.name.removeprefix(_GPG_HOME).split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or process_alive(int(pid)):
            continue
        _remove_gpg_home(home)


def _remove_gpg_home(home: Path) -> None:
    """Stop the agent of a gpg home, then remove the home."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            [shutil.which("gpgconf") or "gpgconf", "--homedir", str(home), "--kill",
             "gpg-agent"],
            capture_output=True, timeout=10, check=False,
        )  # fmt: skip
    shutil.rmtree(home, ignore_errors=True)


def _age_child(
    binary: str, args: list[str], identities: Sequence[Any] = (), stdin: Path | None = None
) -> _Child:
    """age, with in-memory identities on pipes (``-i /dev/fd/N``), never on disk."""
    argv = [binary, *args]
    for number in range(len(identities)):
        argv += ["-i", f"/dev/fd/{{fd{number}}}"]
    secrets = [f"{identity}\n".encode() for identity in identities]
    return _Child("age", argv, secrets, stdin=stdin)


def _wrong_identity(archive: object) -> DecryptError:
    return DecryptError(
        archive, "cannot decrypt: the age identity given is not one of its recipients",
        reason="wrong_key",
    )  # fmt: skip


# ---------------------------------------------------------------- encrypting


class Encryptor:
    """A write-only stream: plaintext in by :meth:`write`, ciphertext out to ``out`` (by
    ``out.write`` only, in order) from a thread of its own. :meth:`close` finishes the
    ciphertext and raises what went wrong; :meth:`abort` drops it."""

    def __init__(self, encryption: Encryption, out: IO[bytes] | Any, *, own: Any = None) -> None:
        self._error: BaseException | None = None
        self._out = out
        self._child: _Child | None = None
        binary = age_binary() if encryption.kind == "age" else None
        if encryption.kind == "age" and binary is None:
            recipients = list(encryption.recipients) + ([own.to_public()] if own else [])
            read_fd, self._write_fd = os.pipe()
            _widen_pipe(self._write_fd)
            reader = os.fdopen(read_fd, "rb", buffering=_PIPE_SIZE)
            self._thread = threading.Thread(
                target=self._run_pyrage, args=(reader, recipients), daemon=True
            )
        else:
            if binary is not None:
                texts = [*encryption.recipient_texts, *([str(own.to_public())] if own else [])]
                args = ["--encrypt"] + [arg for text in texts for arg in ("-r", text)]
                self._child = _age_child(binary, args)
            else:
                assert encryption.passphrase_file is not None
                self._child = _gpg(
                    read_passphrase(encryption.passphrase_file),
                    ["--symmetric", "--cipher-algo", "AES256", "--compress-algo", "none",
                     "--s2k-digest-algo", "SHA512", "--output", "-"],
                )  # fmt: skip
            assert self._child.proc.stdin is not None
            self._write_fd = self._child.proc.stdin.fileno()
            self._thread = threading.Thread(target=self._run_child, daemon=True)
        self._thread.start()

    def _run_pyrage(self, reader: IO[bytes], recipients: list[Any]) -> None:
        try:
            with reader:
                _pyrage().encrypt_io(reader, self._out, recipients)
        except BaseException as exc:
            self._error = exc

    def _run_child(self) -> None:
        assert self._child is not None and self._child.proc.stdout is not None
        try:
            stdout = self._child.proc.stdout.fileno()
            while chunk := os.read(stdout, _READ_SIZE):
                self._out.write(chunk)
        except BaseException as exc:
            self._error = exc
            self._child.kill()

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
        if self._child is not None:
            what = "age" if self._child.kind == "age" else "gpg"
            return OperationError(what, self._child._last_line(f"{what} stopped"))
        return OperationError("age", "the encryption stopped")

    def _end_input(self) -> None:
        if self._child is not None:
            assert self._child.proc.stdin is not None
            with contextlib.suppress(OSError):
                self._child.proc.stdin.close()
        else:
            with contextlib.suppress(OSError):
                os.close(self._write_fd)
        self._write_fd = -1

    def close(self) -> None:
        """End the plaintext and wait for the last ciphertext byte to be written."""
        self._end_input()
        self._thread.join()
        if self._child is not None:
            code = self._child.close()
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
        if self._child is not None:
            self._child.kill()
        self._end_input()
        self._thread.join()
        if self._child is not None:
            self._child.close()


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


def _pyrage_failure(archive: object, exc: BaseException) -> Exception:
    text = str(exc)
    if "No matching keys" in text:
        return _wrong_identity(archive)
    if "Header is invalid" in text or "fill whole buffer" in text:
        return IntegrityError(archive, "not an age file (damaged or not encrypted)")
    if "truncated" in text:
        return IntegrityError(archive, "the age file is truncated")
    return IntegrityError(archive, f"the age data is damaged or tampered with ({text})")


def decrypt_stream(
    kind: Kind,
    keys: Keys,
    source: Path | Iterable[bytes],
    accept: Callable[[bytes], None],
    archive: object,
    stop: threading.Event | None = None,
) -> None:
    """Decrypt ``source`` (a local file, which the ``age`` or ``gpg`` program then reads
    itself, or the ciphertext's pieces in order), handing each plaintext piece to
    ``accept``; returns when the whole ciphertext is authenticated. DecryptError (no key,
    wrong key or passphrase), IntegrityError (damaged, truncated, tampered with), or what
    reading the source or ``accept`` raised. ``stop`` set: ends early, silently."""
    stop = stop or threading.Event()
    file_source = source if isinstance(source, Path) else None
    reader = _PiecesReader(_read_file(source) if isinstance(source, Path) else source, stop)
    if kind == "age":
        identities = keys.age_identities(archive)  # checked here: errors name the file
        binary = age_binary()
        if binary is None:
            sink = _Sink(accept)
            try:
                _pyrage().decrypt_io(reader, sink, identities)
            except Exception as exc:
                if stop.is_set():
                    return
                raise (reader.error or sink.error or _pyrage_failure(archive, exc)) from None
            if reader.error is not None:
                raise reader.error
            return
        args = ["--decrypt"] + [arg for path in keys.identity_files for arg in ("-i", str(path))]
        child = _age_child(binary, args, keys.own, stdin=file_source)
    else:
        child = _gpg(keys.passphrase(archive), ["--decrypt", "--output", "-"], stdin=file_source)
    failed: list[BaseException] = []

    def feed() -> None:
        assert child.proc.stdin is not None
        try:
            with child.proc.stdin:
                while piece := reader.read(_PIPE_SIZE):
                    child.proc.stdin.write(piece)
        except BrokenPipeError:
            pass  # the program stopped: its exit status and stderr say why
        except BaseException as exc:
            failed.append(exc)
            child.kill()

    feeder = threading.Thread(target=feed, daemon=True)
    if file_source is None:
        feeder.start()
    try:
        assert child.proc.stdout is not None
        stdout = child.proc.stdout.fileno()
        while chunk := os.read(stdout, _READ_SIZE):
            if stop.is_set():
                child.kill()
                break
            accept(chunk)
    except BaseException:
        child.kill()
        stop.set()
        if feeder.is_alive():
            feeder.join()
        child.close()
        raise
    if feeder.is_alive() or file_source is None:
        feeder.join()
    code = child.close()
    if stop.is_set():
        return
    if reader.error is not None:
        raise reader.error
    if failed:
        raise failed[0]
    if code != 0:
        raise child.failure(archive)


def _read_file(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fp:
        while piece := fp.read(_PIPE_SIZE):
            yield piece


def decrypt_bytes(kind: Kind, keys: Keys, data: bytes, archive: object) -> bytes:
    """A small encrypted file decrypted whole."""
    parts: list[bytes] = []
    decrypt_stream(kind, keys, [data], parts.append, archive)
    return b"".join(parts)


# ---------------------------------------------------------------- sealed scratch


_BLOCK = 1 << 20
_TAG = 16
_NONCE = 12


class Forgotten(LookupError):
    """A read of bytes that a forgetting :class:`SealedScratch` dropped, every one of
    them having been read once already."""


class SealedScratch:
    """Append-only scratch bytes, read back at any offset by any thread.

    The newest ``cache_blocks`` blocks of 1 MiB are in memory. An older block goes to the
    scratch file, sealed with AES-256-GCM under a key made here and kept in memory only
    (the file is unlinked as soon as it is open), unless ``forgets`` is set and every byte
    of it has been read: such a block is dropped, and reading it again raises
    :class:`Forgotten`. With ``paced``, :meth:`append` waits while it is ``cache_blocks``
    blocks ahead of the furthest read asked for (until :meth:`release`): readers that
    follow the writer then read from memory. (Pacing by the slowest reader instead kept
    fewer blocks from the file but was slower: measured, verify 1.43-1.47 s against
    1.25 s; without pacing, 1.39-1.52 s.)
    A reader past the end waits until the bytes are appended or :meth:`end` is called.
    """

    def __init__(
        self,
        folder: str | None = None,
        cache_blocks: int = 8,
        *,
        paced: bool = False,
        forgets: bool = False,
    ) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        from fda_vault._fsio import fixed_mmap_threshold

        fixed_mmap_threshold()  # its MiB blocks come and go by the hundred, from threads
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))
        self._folder = folder
        self._file: IO[bytes] | None = None  # made when a first block must wait there
        self._pending = bytearray()  # the last, partial block (plaintext, in memory)
        self._blocks = 0
        self.size = 0
        self._ended = False
        self._failure: BaseException | None = None
        self._cond = threading.Condition()
        self._waiting = 0  # readers waiting for bytes not appended yet
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cache_blocks = cache_blocks
        self._sealed: set[int] = set()  # blocks in the scratch file
        self._paced = paced
        self._asked = 0  # the end of the furthest read asked for
        self._forgets = forgets
        self._read: dict[int, list[list[int]]] = {}  # block -> merged [start, end) read

    def _nonce(self, index: int) -> bytes:
        return index.to_bytes(_NONCE, "big")  # each block sealed once under this key

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes at the end (one writer); paced: wait while far ahead of the readers."""
        with self._cond:
            self._pending += data
            while len(self._pending) >= _BLOCK:
                self._keep(self._blocks, bytes(self._pending[:_BLOCK]))
                self._blocks += 1
                del self._pending[:_BLOCK]
            self.size += len(data)
            if self._waiting:
                self._cond.notify_all()
            while self._paced and self._blocks - self._asked // _BLOCK >= self._cache_blocks:
                self._cond.wait()

    def release(self) -> None:
        """No more pacing: the writer runs to the end (the whole stream is needed)."""
        with self._cond:
            self._paced = False
            self._cond.notify_all()

    def mark_read(self, offset: int, length: int) -> None:
        """Count bytes as read (those the caller holds elsewhere)."""
        with self._cond:
            end = offset + length
            while offset < end:
                index, at = divmod(offset, _BLOCK)
                take = min(_BLOCK - at, end - offset)
                self._note_read(index, at, at + take)
                offset += take

    def _note_read(self, index: int, start: int, end: int) -> None:
        if not self._forgets:
            return
        spans = self._read.setdefault(index, [])
        for span in spans:
            if start <= span[1] and end >= span[0]:
                span[0], span[1] = min(span[0], start), max(span[1], end)
                break
        else:
            spans.append([start, end])
        if len(spans) > 1:
            spans.sort()
            merged = [spans[0]]
            for span in spans[1:]:
                if span[0] <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], span[1])
                else:
                    merged.append(span)
            self._read[index] = merged

    def _fully_read(self, index: int) -> bool:
        spans = self._read.get(index)
        return spans is not None and spans[0][0] == 0 and spans[0][1] >= _BLOCK

    def _keep(self, index: int, block: bytes) -> None:
        """Put a block in memory, moving the oldest out (sealed to the file, or dropped)."""
        self._cache[index] = block
        self._cache.move_to_end(index)
        while len(self._cache) > self._cache_blocks:
            old, data = self._cache.popitem(last=False)
            if old in self._sealed or (self._forgets and self._fully_read(old)):
                continue
            self._seal(old, data)

    def _seal(self, index: int, block: bytes) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile(dir=self._folder, prefix="fda-vault-sealed-")  # noqa: SIM115
        sealed = self._aead.encrypt(self._nonce(index), block, None)
        offset = index * (_BLOCK + _TAG)
        view = memoryview(sealed)
        fd = self._file.fileno()
        while view:
            view = view[os.pwrite(fd, view, offset + len(sealed) - len(view)) :]
        self._sealed.add(index)

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

    def _piece(self, index: int, at: int, length: int) -> bytes:
        """Up to ``length`` bytes of block ``index`` from ``at`` (the lock held)."""
        cached = self._cache.get(index)
        if cached is not None:
            self._cache.move_to_end(index)
            piece = cached[at : at + length]
        elif index >= self._blocks:  # the partial last block, still in memory
            piece = bytes(self._pending[at : at + length])
        elif index in self._sealed:
            assert self._file is not None
            size = _BLOCK + _TAG
            sealed = os.pread(self._file.fileno(), size, index * size)
            block = self._aead.decrypt(self._nonce(index), sealed, None)
            self._keep(index, block)
            piece = block[at : at + length]
        else:
            raise Forgotten(index)
        self._note_read(index, at, at + len(piece))
        return piece

    def pread(self, length: int, offset: int) -> bytes:
        """Up to ``length`` bytes at ``offset``, waiting for them if they are not yet
        appended; the failure given to :meth:`end` if they never will be."""
        want = offset + length
        with self._cond:
            if want > self._asked:
                self._asked = want
                if self._paced:
                    self._cond.notify_all()  # a paced writer may go on
            while self.size < want and not self._ended:
                self._waiting += 1
                try:
                    self._cond.wait()
                finally:
                    self._waiting -= 1
            if self.size < want and self._failure is not None:
                raise self._failure
            want = min(want, self.size)
            pieces = []
            while offset < want:
                index, at = divmod(offset, _BLOCK)
                piece = self._piece(index, at, want - offset)
                if not piece:
                    break
                pieces.append(piece)
                offset += len(piece)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def close(self) -> None:
        self.release()
        if self._file is not None:
            self._file.close()
        self._cache.clear()
