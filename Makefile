# imgserver: `make serve` runs the service on the embedded default; `make test` runs the checks
# and the whole suite; `make test-fast` the unit and contract tiers on the embedded backends (the
# edit loop); `make bench` measures it against thumbor and the bare libraries (bench/README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: serve stack test test-fast lint typecheck check system-deps bench bench-deps clean

# Each install step prints one line; pip's and setuptools' own output goes to $(INSTALL_LOG),
# which is printed only when the step fails.
INSTALL_LOG := $(VENV)/install.log
# (in variables: a comma inside $(call ...)'s arguments would split them)
TEST_EXTRAS  := .[test,stack]
BENCH_EXTRAS := .[test,stack,bench]
define pip_install
	@echo "make: installing $(1)"
	@$(BIN)/pip install -q $(2) >>$(INSTALL_LOG) 2>&1 || { cat $(INSTALL_LOG); \
		echo "make: installing $(1) failed (its log, above, is in $(INSTALL_LOG))"; exit 1; }
endef

$(BIN)/python:
	@echo "make: creating the virtualenv $(VENV)"
	@$(PYTHON) -m venv $(VENV)
	$(call pip_install,the latest pip,--upgrade pip)

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(call pip_install,imgserver and its dependencies,-e .)
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(call pip_install,the test and stack extras,-e '$(TEST_EXTRAS)')
	@touch $@

$(VENV)/.installed-bench: $(VENV)/.installed-test
	$(call pip_install,the bench extras,-e '$(BENCH_EXTRAS)')
	@touch $@

system-deps:
	deploy/system-deps.sh

serve: $(VENV)/.installed
	$(BIN)/python -m imgserver serve

# The distributed mode on this machine: Redis, RabbitMQ, an S3 endpoint, web + both workers.
stack: $(VENV)/.installed-test system-deps
	$(BIN)/python -m imgserver stack

check: $(VENV)/.installed
	$(BIN)/python -m imgserver check

# ruff (lint and format) over the tree
lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy, strict, over imgserver/ and workers/ (settings in pyproject.toml)
typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

test: lint typecheck system-deps
	$(BIN)/pytest

# unit + contract tests against the embedded backends: no Redis, RabbitMQ, S3, service process
# or GEGL comparison
test-fast: $(VENV)/.installed-test
	$(BIN)/pytest -q tests/unit tests/contract -m "not services and not gegl"

# thumbor 7.8 in its own venv (its Pillow and tornado pins stay out of ours)
THUMBOR_VENV := bench/.cache/thumbor-venv
$(THUMBOR_VENV)/bin/thumbor:
	$(PYTHON) -m venv $(THUMBOR_VENV)
	$(THUMBOR_VENV)/bin/pip install -q "thumbor==7.8.*"

# wrk, nginx (the sources' origin, a 301 floor), the distributed stack, thumbor, the photos
bench-deps: $(VENV)/.installed-bench $(THUMBOR_VENV)/bin/thumbor
	deploy/system-deps.sh wrk nginx redis-server rabbitmq-server
	$(BIN)/python -c 'import sys; sys.path.insert(0, "."); from bench.photos import photos; photos()'

# BENCH_ARGS: e.g. --quick, --only miss,hit, --skip-distributed, --skip-thumbor, --profile
bench: bench-deps
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data .stack .pytest_cache .ruff_cache
