"""The layers of docs/architecture.md, enforced: who may import whom (lazy imports too)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "fda_vault"
ZIP_LAYER = {"_deflate", "_zipformat", "_zipindex", "_zipwriter"}
BASE = {"_errors", "_config", "_progress"}


def _imports(module: str) -> set[str]:
    """Every module ``fda_vault.<module>`` imports, at the top or inside a function."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if node.module == "fda_vault":
                found.update(f"fda_vault.{alias.name}" for alias in node.names)
    return found


def _modules() -> list[str]:
    return sorted(p.stem for p in PACKAGE.glob("*.py"))


def _ours(module: str) -> set[str]:
    return {
        name.split(".")[1]
        for name in _imports(module)
        if name.startswith("fda_vault.") and name.count(".") == 1
    }


def test_the_zip_layer_knows_nothing_of_fda_vault() -> None:
    for module in ZIP_LAYER:
        assert _ours(module) <= ZIP_LAYER, (module, _ours(module) - ZIP_LAYER)


def test_the_base_modules_import_no_other_layer() -> None:
    for module in BASE:
        assert _ours(module) <= {"_errors"}, (module, _ours(module))


def test_only_the_cli_uses_typer_and_only_the_terminal_owner_uses_rich() -> None:
    for module in _modules():
        imports = _imports(module)
        uses_typer = any(name == "typer" or name.startswith("typer.") for name in imports)
        uses_rich = any(name == "rich" or name.startswith("rich.") for name in imports)
        assert not uses_typer or module == "cli", module
        assert not uses_rich or module == "_output", module


def test_the_library_never_imports_the_cli_or_the_terminal() -> None:
    for module in _modules():
        if module in {"cli", "entry", "__main__"}:
            continue
        assert not (_ours(module) & {"cli", "_output"}), module


def test_version_answers_without_importing_the_cli_stack() -> None:
    """``fda-vault --version`` imports neither typer, rich nor pydantic (start-up cost)."""
    import subprocess
    import sys

    probe = (
        "import sys; sys.argv = ['fda-vault', '--version']\n"
        "from fda_vault.entry import main; main()\n"
        "print(sorted(m for m in ('typer', 'rich', 'pydantic') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=60)  # fmt: skip
    import fda_vault

    assert done.stdout.splitlines() == [f"fda-vault {fda_vault.__version__}", "[]"]
