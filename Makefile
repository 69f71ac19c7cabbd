# One task runner for set-up, checks, tests and benchmarks.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Extra arguments for `make run`, `make demo` and `make sync`, e.g. ARGS="--port 9000"
ARGS ?=

.PHONY: install install-test run demo sync lint format typecheck test test-fast bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"

# The service: HTTP API and web UI on http://127.0.0.1:8420/ui/, SQLite in ./wasync-data.
run: install
	$(BIN)/wasync serve --data-dir wasync-data $(ARGS)

# The same service on a simulated account with live traffic: no phone needed.
demo: install
	$(BIN)/wasync demo $(ARGS)

# One initial sync of a simulated account into ./wasync-sync-data (its own directory,
# so that `make run` never starts the simulated session), then what it holds.
sync: install
	$(BIN)/wasync sync --engine simulator --data-dir wasync-sync-data $(ARGS)
	$(BIN)/wasync stats --data-dir wasync-sync-data

lint: install-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: install-test
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

typecheck: install-test
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -q -ra

test-fast: install-test
	$(BIN)/pytest -q -x -m "not slow"

bench: install-test
	$(BIN)/python bench/ingest.py --messages 200000

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache wasync-data wasync-sync-data
