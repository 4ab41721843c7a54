"""``key generate``: a new age identity in a private file, its public key shown."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, Field

from fda_vault._crypto import generate_identity
from fda_vault._fsio import write_new_file

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
    write_new_file(path, text, 0o600)
    return GeneratedKey(identity_file=str(path), public_key=public)
