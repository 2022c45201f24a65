# The two commands of the README. Both create .venv on first use and install into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: dev test lint install

$(BIN)/openlines: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/openlines

## Run the whole system: Temporal dev server + UI, worker and API on a SQLite file in ./data
dev: install
	$(BIN)/openlines dev

## Run the whole test suite, on SQLite and on PostgreSQL (skipped, and said so, if unreachable)
test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
