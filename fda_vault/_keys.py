"""``key generate``: a new age identity in a private file, its public key shown."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, Field

from fda_vault._crypto import generate_identity
from fda_vault._errors import UsageError
from fda_vault._fsio import fsync_path, os_failure

__all__ = ["GeneratedKey", "generate_key"]


class GeneratedKey(BaseModel):
    """A new age identity."""

    identity_file: str = Field(description="the secret key's file (mode 0600)")
    public_key: str = Field(description="the recipient to give --encrypt-to (age1…)")


def generate_key(path: Path) -> GeneratedKey:
    """Write a new age identity to ``path`` (never over an existing file; mode 0600),
    in ``age-keygen``'s format, so that ``age -d -i`` reads it too."""
    secret, public = generate_identity()
    created = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    text = f"# created: {created.replace('+00:00', 'Z')}\n# public key: {public}\n{secret}\n"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise UsageError(path, "exists already; a key file is never overwritten") from None
    except OSError as exc:
        raise os_failure(path, exc, "cannot create the key file") from None
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fp:
            fp.write(text)
            fp.flush()
            os.fsync(fp.fileno())
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise os_failure(path, exc, "cannot write the key file") from None
    fsync_path(path.absolute().parent)
    return GeneratedKey(identity_file=str(path), public_key=public)
