"""The console script and ``python -m fda_vault``: the CLI, imported only when needed.

``fda-vault --version`` answers without importing typer, rich or pydantic (a few
milliseconds instead of ~0.2 s): monitoring and install checks call it often.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Entry point: ``--version`` at once, everything else through :mod:`fda_vault.cli`."""
    if sys.argv[1:] == ["--version"]:
        from fda_vault import __version__

        sys.stdout.write(f"fda-vault {__version__}\n")
        return
    from fda_vault.cli import main as run_cli

    run_cli()
