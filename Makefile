# Everything runs in a local virtualenv (.venv) that the first target builds from pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint check bench bench-migrate clean generate

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## demo: the scripted tutoring-session lifecycle (embedded Redis unless REDIS_SESSIONS_URL is set)
demo: $(STAMP)
	$(BIN)/redis-sessions demo

## test: the whole test suite (starts its own throwaway redis-servers)
test: $(STAMP)
	$(BIN)/python -m pytest

## lint: ruff, mypy (strict on redis_sessions/), the generated sync API is current, and the public
## API is 100% typed and documented as type checkers see it (basedpyright --verifytypes)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python scripts/unasync.py --check
	$(BIN)/python scripts/verifytypes.py

check: lint test

## generate: redis_sessions/_sync_api.py from _async_api.py (SessionStore's methods)
generate: $(STAMP)
	$(BIN)/python scripts/unasync.py

## bench: every benchmark (own throwaway redis-servers; ~10 min, ~600 MB); results in bench/*.md
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_VENV)/.installed

bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m bench.run
	$(BENCH_VENV)/bin/python -m bench.layout
	$(BENCH_VENV)/bin/python -m bench.async_overhead
	$(BENCH_VENV)/bin/python -m bench.invalidation
	$(BENCH_VENV)/bin/python -m bench.replay
	$(BENCH_VENV)/bin/python -m bench.sweep
	$(BENCH_VENV)/bin/python -m bench.profile
	$(BENCH_VENV)/bin/python -m bench.observability
	$(BENCH_VENV)/bin/python -m bench.http_load

## bench-migrate: `migrate import` rate vs reading PostgreSQL (own PostgreSQL and Redis; ~15 min)
bench-migrate: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m bench.migrate

clean:
	rm -rf $(VENV) .venv-bench .pytest_cache .mypy_cache .ruff_cache .hypothesis dist build
