# One gate: `make check` = lint + types + tests. `.ci/run` runs exactly it.
PY ?= .venv/bin/python
export TASKEXEC_TEST_POSTGRES_URL ?= postgresql+asyncpg://postgres@127.0.0.1:5432/test

.PHONY: install serve lint types test check bench clean

.venv/bin/python:
	python3 -m venv .venv

install: .venv/bin/python
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]" -e clients/python

serve: install
	$(PY) -m app serve

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

types:
	$(PY) -m mypy

test:
	$(PY) -m pytest

check: install lint types test

bench: install
	$(PY) bench/throughput.py

clean:
	rm -rf .venv data .pytest_cache .mypy_cache .ruff_cache
