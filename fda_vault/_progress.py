"""Progress reaches the library as a plain callback object; the CLI draws it with Rich."""

from __future__ import annotations

from typing import Protocol

__all__ = ["NO_PROGRESS", "Progress", "SilentProgress"]


class Progress(Protocol):
    """Receives byte counts of long work; ``output.py`` renders it."""

    def start(self, description: str, total_bytes: int) -> None:
        """A new phase begins (e.g. 'backing up', 'verifying')."""

    def advance(self, nbytes: int) -> None:
        """``nbytes`` more were processed."""

    def finish(self) -> None:
        """The current phase ended."""


class SilentProgress:
    """A Progress that ignores everything: subclass it to act on one event only."""

    def start(self, description: str, total_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def finish(self) -> None:
        pass


NO_PROGRESS: Progress = SilentProgress()
