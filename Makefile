# One task runner for set-up, checks, tests and benchmarks.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Extra arguments for `make run`, e.g. make run ARGS="--scale small --seed 7"
ARGS ?=

.PHONY: install install-test run lint format typecheck test test-fast bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"

run: install
	$(BIN)/wasync sync --engine simulator $(ARGS)
	$(BIN)/wasync stats

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
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache wasync-data
