# Two commands matter: `make demo` and `make test`. Both set up what they need on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup system-deps demo test lint typecheck pytest bench clean

setup: $(STAMP)

# Re-installs only when pyproject.toml changes; otherwise this target is a no-op.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "seml needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

# Programs the integration tests run for real (rclone from Debian, FUSE tools).
system-deps:
	@bash scripts/install-system-deps.sh

demo: setup
	$(BIN)/seml demo

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: setup
	$(BIN)/mypy src tests benchmarks

pytest: setup system-deps
	$(BIN)/pytest

test: lint typecheck pytest

bench: setup system-deps
	@for b in benchmarks/*_bench.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis build src/*.egg-info
