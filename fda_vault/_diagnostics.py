"""Warnings as data: what went wrong but did not stop the run, with a stable reason."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from fda_vault._errors import REASONS

__all__ = ["Diagnostic"]


class Diagnostic(BaseModel):
    """One warning: a reason from :data:`fda_vault._errors.REASONS`, what it is about (a
    file, a folder) and the detail; rendered as ``warning: <path> — <detail>``."""

    reason: str = Field(description="stable, machine-readable (see the README's list)")
    path: str = Field(description="the file or folder it is about ('' when the detail says)")
    detail: str

    @field_validator("reason")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in REASONS:
            raise ValueError(f"unknown reason {value!r}")
        return value

    @property
    def message(self) -> str:
        """The one line shown after ``warning: ``."""
        if not self.path:
            return self.detail
        return f"{self.path} — {self.detail}" if self.detail else self.path
