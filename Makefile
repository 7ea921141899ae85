# ringfence — every target installs what it needs into .venv from pyproject.toml.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run lint test test-slow test-deep bench-inventory clean

$(STAMP): pyproject.toml
	$(BIN)/python -m pip --version >/dev/null 2>&1 || $(PYTHON) -m venv --clear $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## run: serve the API and dashboard on http://127.0.0.1:8400 with the demo (a fresh SQLite database under
##      ./var/demo, ~2,000 simulated hosts, a clock 60x faster); `make run ARGS=--no-demo` serves ./var/ringfence.db
##      without the demo; other `ringfence serve` options go in ARGS too (e.g. ARGS="--demo-speed 120").
ARGS ?=
run: $(STAMP)
	$(BIN)/ringfence serve --demo $(ARGS)

## lint: ruff over everything, mypy --strict over src/
lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

## test: lint, then the suite (on PostgreSQL too when RINGFENCE_TEST_DATABASE_URL is set), kept under 15 minutes
test: lint
	$(BIN)/python -m pytest -m "not extended and not deep"

## test-slow: the long end-to-end suites (failover loops, fuzzing, wheel installs) marked `extended`
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m extended

## test-deep: long random fuzzing (schemathesis for 5 minutes per database); make test has the bounded, deterministic pass
test-deep: $(STAMP)
	$(BIN)/python -m pytest -m deep

bench-inventory: $(STAMP)
	$(BIN)/python bench/inventory_import.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build src/*.egg-info
