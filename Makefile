# imgserver: `make serve` runs the service on the embedded default; `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: serve test lint typecheck check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test]'
	touch $@

serve: $(VENV)/.installed
	$(BIN)/python -m imgserver serve

check: $(VENV)/.installed
	$(BIN)/python -m imgserver check

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/pytest

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache
