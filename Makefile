# The two commands a newcomer needs (see README):
#   make run    start the daemon on this directory's config (state in ./state)
#   make test   install what the tests need and run lint, types and every test
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Debian packages the tests need: the real net-snmp agent and command-line tools
SYSTEM_PACKAGES ?= snmpd snmp systemd chromium prometheus prometheus-alertmanager
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

# -- system install (as root) ------------------------------------------------------------------
#   make install          venv in $(PREFIX), example config in /etc/alertd (only files that are
#                         absent), the unit in $(UNITDIR); `systemctl daemon-reload` if systemd runs
#   make uninstall        remove the venv and the unit; /etc/alertd and /var/lib/alertd are kept
#   make systemd-check    systemd-analyze verify + security (exposure <= 2.0)
# DESTDIR=DIR stages everything under DIR (packaging, tests; a venv staged there runs only from
# there). INSTALL_VENV=no lays down config and unit only. The venv is built with the system
# Python: the service's dynamic user cannot read an interpreter under /root (pyenv). ./build is
# removed around pip: setuptools reuses it, and a stale one would ship modules deleted since.
PREFIX ?= /opt/alertd
UNITDIR ?= /etc/systemd/system
INSTALL_PYTHON ?= /usr/bin/python3
INSTALL_VENV ?= yes
# systemd-analyze security --threshold is in tenths: 20 = an overall exposure of 2.0
SYSTEMD_THRESHOLD ?= 20
# fixed by the unit's ConfigurationDirectory=alertd
CONFDIR := /etc/alertd
ALERTD_CONFIG := thresholds.yaml channels.yaml rules collectors
DROPIN_EXAMPLE := systemd/alertd.service.d/traps-on-162.conf.example

.PHONY: install uninstall systemd-check

install:
	@case "$(PREFIX)" in /?*) ;; *) echo "PREFIX must be an absolute path, not '$(PREFIX)'"; exit 1;; esac
	@if [ "$(INSTALL_VENV)" = yes ]; then \
	  $(INSTALL_PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	    || { echo "$(INSTALL_PYTHON): not found, or older than Python 3.11"; exit 1; }; \
	  $(INSTALL_PYTHON) -m venv $(DESTDIR)$(PREFIX) \
	    || { echo "venv failed: apt-get install python3-venv"; exit 1; }; \
	  rm -rf build; \
	  $(DESTDIR)$(PREFIX)/bin/pip install -q --upgrade pip && $(DESTDIR)$(PREFIX)/bin/pip install -q . ; \
	  status=$$?; rm -rf build; [ $$status = 0 ] || exit $$status; \
	fi
	install -d -m 0755 $(DESTDIR)$(CONFDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(PREFIX)/share/alertd/systemd
	@for f in $$(find $(ALERTD_CONFIG) -type f | sort); do \
	  if [ -e "$(DESTDIR)$(CONFDIR)/$$f" ]; then echo "kept $(CONFDIR)/$$f"; \
	  else install -D -m 0644 "$$f" "$(DESTDIR)$(CONFDIR)/$$f" && echo "installed $(CONFDIR)/$$f"; fi; \
	done
	sed 's|/opt/alertd|$(PREFIX)|g' systemd/alertd.service > $(DESTDIR)$(UNITDIR)/alertd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/alertd.service
	install -m 0644 README.md $(DESTDIR)$(PREFIX)/share/alertd/
	install -m 0644 $(DROPIN_EXAMPLE) $(DESTDIR)$(PREFIX)/share/alertd/systemd/
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; \
	else echo "systemd is not running here (or DESTDIR is set): skipped systemctl daemon-reload"; fi

uninstall:
	@case "$(PREFIX)" in /?*) ;; *) echo "PREFIX must be an absolute path, not '$(PREFIX)'"; exit 1;; esac
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl disable --now alertd || true; fi
	rm -f $(DESTDIR)$(UNITDIR)/alertd.service
	rm -rf $(DESTDIR)$(PREFIX)
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	@echo "kept $(CONFDIR) and /var/lib/private/alertd (config and state): remove them by hand"

# verify checks that ExecStart's binary exists, so the unit is checked as `make install` lays it
# down into a temp DESTDIR, with its venv's alertd standing in for $(PREFIX)/bin/alertd.
systemd-check: $(VENV)/.installed
	@command -v systemd-analyze >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null; \
	  else echo "systemd-analyze missing: apt-get install systemd"; exit 1; fi; }
	@set -eo pipefail; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(MAKE) -s install DESTDIR=$$tmp/root PREFIX=$$tmp/opt INSTALL_VENV=no >/dev/null; \
	mkdir -p $$tmp/opt/bin && ln -s "$$(realpath $(BIN)/alertd)" $$tmp/opt/bin/alertd; \
	unit=$$tmp/root$(UNITDIR)/alertd.service; \
	out=$$(systemd-analyze verify $$unit 2>&1) && [ -z "$$out" ] || { echo "$$out"; exit 1; }; \
	echo "systemd-analyze verify: ok"; \
	systemd-analyze security --offline=true --threshold=$(SYSTEMD_THRESHOLD) $$unit | tail -1; \
	mkdir $$unit.d && cp $(DROPIN_EXAMPLE) $$unit.d/traps-on-162.conf; \
	out=$$(systemd-analyze verify $$unit 2>&1) && [ -z "$$out" ] || { echo "$$out"; exit 1; }; \
	echo "with traps-on-162.conf:"; \
	systemd-analyze security --offline=true --threshold=$(SYSTEMD_THRESHOLD) $$unit | tail -1
