# The two commands a newcomer needs (see README):
#   make run    start the daemon on this directory's config (state in ./state)
#   make test   install what the tests need and run lint, types and every test
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Debian packages the tests need: the real net-snmp agent and command-line tools
SYSTEM_PACKAGES ?= snmpd snmp
STATE_DIR ?= state
LISTEN ?= 127.0.0.1:9095

.PHONY: run test lint typecheck unit integration e2e bench check-config system-deps clean

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); \
	  else echo "python3 -m venv failed: install python3-venv (apt-get install python3-venv)"; exit 1; fi; }
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	@touch $@ $(VENV)/.installed

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "tests need:$$missing (run make test as root, or apt-get install them)"; exit 1; fi; fi

run: $(VENV)/.installed
	$(BIN)/alertd run --config-dir . --state-dir $(STATE_DIR) --listen $(LISTEN)

check-config: $(VENV)/.installed
	$(BIN)/alertd check-config .

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

test: system-deps $(VENV)/.installed-test lint typecheck
	$(BIN)/alertd check-config .
	$(BIN)/pytest

unit: $(VENV)/.installed-test
	$(BIN)/pytest tests/unit

integration: $(VENV)/.installed-test
	$(BIN)/pytest -m integration

e2e: $(VENV)/.installed-test
	$(BIN)/pytest -m e2e

bench: $(VENV)/.installed-test
	bash bench/run_all.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
