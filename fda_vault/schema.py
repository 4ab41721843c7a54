"""The JSON Schema of ``metadata.json``, generated from BackupManifest into docs/.

Run ``python -m fda_vault.schema`` after changing the manifest model; a test fails
while ``docs/manifest.schema.json`` is stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from fda_vault.manifest import BackupManifest

__all__ = ["SCHEMA_PATH", "main", "manifest_json_schema", "render_schema"]

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "docs" / "manifest.schema.json"


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema of ``metadata.json``, by alias: ``schema``, as written in archives."""
    return BackupManifest.model_json_schema(by_alias=True)


def render_schema() -> str:
    """The schema as committed: sorted keys, two-space indent, trailing newline."""
    return json.dumps(manifest_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the schema to ``docs/manifest.schema.json`` (or to the path given)."""
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else SCHEMA_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_schema(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
