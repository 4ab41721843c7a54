"""The JSON Schema of ``metadata.json``, generated from BackupManifest.

``python -m fda_vault.schema`` prints it (or writes it to the path given); ``make docs``
writes the checkout's ``docs/manifest.schema.json``, and a test fails while that is stale.
``python -m fda_vault.schema config`` does the same for the job's config file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from fda_vault._manifest import BackupManifest

__all__ = ["main", "manifest_json_schema", "render_schema"]


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema of ``metadata.json``, by alias: ``schema``, as written in archives."""
    return BackupManifest.model_json_schema(by_alias=True)


def render_schema() -> str:
    """The schema as committed: sorted keys, two-space indent, trailing newline."""
    return json.dumps(manifest_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Print the schema on stdout, or write it to the one path given; ``config [PATH]``:
    the schema of the job's config file (``docs/config.schema.json``) instead."""
    args = sys.argv[1:] if argv is None else argv
    render = render_schema
    if args[:1] == ["config"]:
        from fda_vault._jobconfig import render_config_schema

        render, args = render_config_schema, args[1:]
    if not args:
        sys.stdout.write(render())
        return 0
    target = Path(args[0])
    target.write_text(render(), encoding="utf-8")
    print(f"wrote {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
