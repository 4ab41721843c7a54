# Two commands for a fresh clone (README "Quick start"):
#   make demo   create .venv, install fda-vault, back up examples/projects and verify it
#   make test   lint, type-check and run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEMO_BACKUPS := build/demo-backups

.PHONY: demo test install docs clean

$(BIN)/fda-vault: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/fda-vault

demo: install
	@# git keeps no empty folders; the examples have some, listed in this file
	sed -e '/^#/d' -e '/^$$/d' examples/EMPTY_DIRS.txt | xargs mkdir -p
	@# fda-vault creates only the last folder of --output-dir (a missing parent is an error)
	mkdir -p build
	$(BIN)/fda-vault backup --all --projects-dir examples/projects --output-dir $(DEMO_BACKUPS)
	$(BIN)/fda-vault verify $$(ls -t $(DEMO_BACKUPS)/*.zip | head -n 1)
	$(BIN)/fda-vault list --backups-dir $(DEMO_BACKUPS)

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict fda_vault
	$(BIN)/python -m pytest

# Regenerate the generated docs (tests fail while they are stale).
docs: install
	$(BIN)/python -m tools.clidoc docs/cli.md
	$(BIN)/python -m fda_vault.schema docs/manifest.schema.json
	$(BIN)/python -m fda_vault.schema config docs/config.schema.json

clean:
	rm -rf $(VENV) build .mypy_cache .ruff_cache .pytest_cache .hypothesis
