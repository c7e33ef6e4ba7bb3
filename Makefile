# Two commands matter: `make demo` and `make test`. Both set up what they need on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup system-deps demo test test-long lint typecheck pytest bench image screenshots clean

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

# Two workers (pytest-xdist), each test file whole on one of them, so a module's fixtures (a
# CAS, a trained flow) are built once and each worker has its own SeaweedFS and temp folders:
# one pytest process keeps one core busy, two keep both. `make pytest PYTEST_ARGS="-x"` runs
# it in one process.
PYTEST_ARGS ?= -n 2 --dist loadfile
pytest: setup system-deps
	$(BIN)/pytest -m "not long" $(PYTEST_ARGS)

# The end-to-end runs of several minutes each (marker `long`): five hosts in network
# namespaces, the iris README as three people, `seml demo` as a user runs it, the bench in
# both modes, tiny runs of the benchmarks under benchmarks/ (sync, model, runtime). .ci/run
# runs it after make test, so make test stays under ten minutes.
test-long: setup system-deps
	$(BIN)/pytest -m long

test: lint typecheck pytest

# The OCI image (deploy/image/Containerfile), built with buildah on a Debian base made with
# debootstrap (both installed with apt-get when missing), then checked: seml --version and the
# whole seml demo inside it, no secret in any layer. Slow (10+ minutes): not part of `make test`.
image: setup
	SEML_IMAGE_TEST=1 $(BIN)/pytest tests/deploy/test_deploy_image.py -p no:cacheprovider -rA -s

# The console's pages as the README shows them (docs/img/console-*.png): the browser tests, run
# against a real attestation service, save each page they visit there too.
screenshots: setup system-deps
	SEML_SCREENSHOTS=$(CURDIR)/docs/img $(BIN)/pytest tests/console/test_console_browser.py -p no:cacheprovider -q

# Every benchmark (about 30 minutes on an idle 2-core machine: 1 GiB transfers, the flow on G
# and, at one repetition, on 1.5 M rows), then one table of every performance target: seml's
# figure, its peer's in the same run, the ratio and met/MISSED.
bench: setup system-deps
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis build src/*.egg-info
