# Two commands: `make dev` brings the whole stack up, `make test` installs what it needs and runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the suite runs for real (Alertmanager, promtool); installed once per machine.
SYSTEM_STAMP := $(VENV)/.system-packages

.PHONY: dev test lint install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

$(SYSTEM_STAMP): .ci/system-packages | $(BIN)/python
	bash .ci/system-packages
	touch $(SYSTEM_STAMP)

dev: $(STAMP)
	$(BIN)/stanch dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint $(SYSTEM_STAMP)
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .stanch .pytest_cache .mypy_cache .ruff_cache

# The issue #7 benchmarks (bench/README.md); each starts and stops its own private stack on free ports.
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python -m bench.overhead
	$(BIN)/python -m bench.first_action
	$(BIN)/python -m bench.parked
	$(BIN)/python -m bench.replay
