# vpump: everything runs from a project virtualenv that this Makefile builds.
# Needs only python3 (3.10+) on a fresh clone.  Override the venv location with VENV=...

VENV ?= .venv
PYTHON3 ?= python3
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
VPUMP := $(VENV)/bin/vpump
# Rebuilt when pyproject.toml changes: the stamp lives inside the venv, so deleting the venv
# (or pointing VENV elsewhere) reinstalls from scratch.
STAMP := $(VENV)/.vpump-installed
# MicroPython 1.27 for the tests (WebAssembly port, run under node): `npm ci` from package.json and
# package-lock.json into node_modules/, again only when the lock changes or node_modules goes.
NPM ?= npm
NODE_STAMP := node_modules/.vpump-npm-ci

.DEFAULT_GOAL := help
.PHONY: help install venv demo test bench diagram dissector tshark traceability clean

help:
	@echo "make install   create $(VENV) and install vpump with its test, bench, board, report, campaign and capture extras"
	@echo "make demo      run the adult SCI continuous scenario for 180 days into out/demo, and its report"
	@echo "make test      run the test suites"
	@echo "make bench     run the benchmarks: bench/results.json and a table"
	@echo "make diagram   regenerate docs/state-machine.md from the state table"
	@echo "make dissector regenerate the tables of tools/wireshark/vpump.lua from protocol/ and firmware/"
	@echo "make traceability  regenerate docs/traceability.md (safety requirements -> tests -> scenarios)"
	@echo "make clean     remove build outputs and caches (keeps $(VENV))"

$(PY):
	$(PYTHON3) -m venv $(VENV)

$(STAMP): pyproject.toml Makefile | $(PY)
	$(PIP) install -q -e '.[test,bench,board,report,campaign,capture]'
	@touch $@

install venv: $(STAMP)

# Without npm (no node) the MicroPython tests skip and say why; everything else still runs.
$(NODE_STAMP): package.json package-lock.json
	@if command -v $(NPM) >/dev/null 2>&1; then \
		$(NPM) ci --no-audit --no-fund && touch $@; \
	else \
		echo "make: $(NPM) not found: the MicroPython tests will be skipped (install nodejs and npm)"; \
	fi

demo: $(STAMP)
	$(VPUMP) run scenarios/adult-sci-continuous.toml --days 180 --out out/demo
	$(VPUMP) report out/demo --scenario adult-sci-continuous

# The Wireshark dissector's test runs the real tshark (Debian package): installed here when it is
# missing and we can (root with apt-get, as CI is); otherwise that test is skipped, and says so.
tshark:
	@if ! command -v tshark >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "make: installing tshark (Debian package) for the Wireshark dissector test"; \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tshark >/dev/null) \
				|| echo "make: could not install tshark: the Wireshark dissector test will be skipped"; \
		else \
			echo "make: tshark not found (and not root with apt-get to install it): the Wireshark dissector test will be skipped"; \
		fi; \
	fi

# Every suite runs from pytest; later suites add their installs as prerequisites here.  -rs lists
# every skipped test with its reason at the end.
test: $(STAMP) $(NODE_STAMP) tshark
	@command -v tshark >/dev/null 2>&1 || echo "make test: tshark not found: SKIPPING the Wireshark dissector test (tests/tools/test_wireshark.py)"
	$(PY) -m pytest -rs

bench: $(STAMP) $(NODE_STAMP)
	$(PY) bench/run.py

diagram: $(STAMP)
	$(VPUMP) diagram

dissector: $(STAMP)
	$(VPUMP) wireshark --generate

traceability: $(STAMP)
	$(VPUMP) traceability

clean:
	rm -rf build dist *.egg-info out .pytest_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
