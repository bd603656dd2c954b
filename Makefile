# Everything a fresh machine needs, from one command: `make test` or `make demo`.
# Debian packages (jackd2, mosquitto) are installed when missing and we are root.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYSTEM_STAMP := $(VENV)/.system
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: all setup system test soak wheel-check demo bench clean

all: test

setup: $(STAMP) $(SYSTEM_STAMP)

# System packages: jackd2 (dummy driver for tests and the demo) and mosquitto (MQTT broker).
$(SYSTEM_STAMP): | $(VENV)/bin/python
	@bash .ci/system-packages
	@touch $@

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(VENV)/bin/python $(SYSTEM_STAMP)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[train,test]'
	@touch $@

system: $(SYSTEM_STAMP)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The long reliability runs (docs/safety.md): ten minutes of show in real time, an hour with the loudness model.
soak: setup
	$(BIN)/python -m pytest -m soak -s tests/reliability $(PYTEST_ARGS)

# The wheel alone: built, installed in a fresh venv (runtime dependencies from the package index), run from outside the checkout.
wheel-check: setup
	$(BIN)/python -m pytest -m wheel tests/test_wheel.py $(PYTEST_ARGS)

demo: setup
	$(BIN)/ailive demo --headless

# ~20 minutes on 2 cores: latency, a real jackd for 5 minutes per period, CPU and memory, desk traffic.
# BENCH_ARGS=--smoke runs every section for seconds; --note says what else ran on the machine.
bench: setup
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
