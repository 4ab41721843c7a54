"""The ``fda-vault`` program's entry point: process-wide settings, then the CLI."""

from __future__ import annotations

import os


def main() -> None:
    """Run the CLI (the console script and ``python -m fda_vault``)."""
    # fda-vault uses no pydantic plugins, and looking for them scans the entry points of
    # every installed package: ~0.1 s of each command's start-up. It must be set before
    # typer and pydantic are imported; set the variable yourself to opt back in.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from fda_vault.cli import main as cli_main

    cli_main()
