# Two commands: `make dev` brings the whole stack up, `make test` installs what it needs and runs the suite.
# `make test-fast` is the tier that needs no real stack (tests/README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the suite runs for real (Alertmanager, promtool); installed once per machine.
SYSTEM_STAMP := $(VENV)/.system-packages

.PHONY: dev test test-fast test-serial lint install clean

# pytest-xdist workers. Two on a 2-core machine (measured in tests/README.md); each worker has its own
# session fixtures (Postgres, sandbox, time-skipping server, dev stack), so more workers cost more memory.
# `--dist loadscope` keeps a module (or class) on one worker: module fixtures (the intake's dev server)
# start once, and the e2e modules share their worker's one dev stack.
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadscope
# The fast tier has no shared stack to keep together, and its tests differ in length by 100x: `--dist load`
# hands them out one by one (measured 2026-12-04, quiet: 176 s against loadscope's 205 s). (`loadgroup`
# would keep a module fixture's tests together, but does nothing with pytest 9: tests/README.md.) Two
# workers: the tier is CPU-bound on 2 cores, and a third costs its own collection and session fixtures
# (~50 CPU-seconds) for little overlap (2026-12-04 on a slower 2-core machine: 132-140 s with two, 154 s
# with three; on the earlier one three had been 119 s against two's 124-127 s).
FAST_WORKERS ?= 2
FAST_XDIST := -n $(FAST_WORKERS) --dist load

# Python's and pytest's bytecode caches are written (to __pycache__, ignored by git) even where the environment
# says PYTHONDONTWRITEBYTECODE, as this machine kind's does: without them every xdist worker rewrites every test
# module's asserts again (~12 s of CPU each, measured 2026-12-04), and every workflow run's sandbox, which imports
# its runbook afresh, compiles it from source. The fast tier: 214 s with the variable, 164 s without (tests/README.md).
unexport PYTHONDONTWRITEBYTECODE

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The real OpenID provider the console's sign-in tests run (tests/oidc/: panva's oidc-provider, pinned by its
# package-lock.json), from the npm registry with Debian's npm (.ci/system-packages); node_modules stays there.
NODE_STAMP := tests/oidc/node_modules/.installed
$(NODE_STAMP): tests/oidc/package.json tests/oidc/package-lock.json
	npm ci --prefix tests/oidc --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

install: $(STAMP) $(NODE_STAMP)

$(SYSTEM_STAMP): .ci/system-packages | $(BIN)/python
	bash .ci/system-packages
	touch $(SYSTEM_STAMP)

dev: $(STAMP)
	$(BIN)/stanch dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint $(SYSTEM_STAMP) $(NODE_STAMP)
	$(BIN)/pytest -q $(XDIST)

# Everything that needs no real stack and no seconds of real time: no DevStack processes, no subprocess worker,
# no real database tools or retries (markers `e2e` and `slow` deselected; tests/README.md).
test-fast: $(STAMP) $(NODE_STAMP)
	$(BIN)/pytest -q $(FAST_XDIST) -m "not e2e and not slow"

# The whole suite in one process, as before xdist (for a hang or an ordering question).
test-serial: lint $(SYSTEM_STAMP) $(NODE_STAMP)
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .stanch .pytest_cache .mypy_cache .ruff_cache tests/oidc/node_modules

# The benchmarks (bench/README.md); each starts and stops its own private stack on free ports.
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python -m bench.overhead
	$(BIN)/python -m bench.first_action
	$(BIN)/python -m bench.parked
	$(BIN)/python -m bench.replay
	$(BIN)/python -m bench.worker_kill
	$(BIN)/python -m bench.cli
