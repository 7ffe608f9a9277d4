# imgserver: `make serve` runs the service on the embedded default; `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: serve stack test lint check system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[test,stack]'
	touch $@

system-deps:
	deploy/system-deps.sh

serve: $(VENV)/.installed
	$(BIN)/python -m imgserver serve

# The distributed mode on this machine: Redis, RabbitMQ, an S3 endpoint, web + both workers.
stack: $(VENV)/.installed-test system-deps
	PATH=$(CURDIR)/$(BIN):$$PATH deploy/stack.sh

check: $(VENV)/.installed
	$(BIN)/python -m imgserver check

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(VENV)/.installed-test system-deps
	$(BIN)/ruff check .
	$(BIN)/pytest

clean:
	rm -rf $(VENV) data .stack .pytest_cache .ruff_cache
