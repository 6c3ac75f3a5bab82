# Two commands on a fresh machine: `make demo` and `make test` (README).
# Both run scripts/setup.sh first: it installs what is missing and is a no-op
# (well under a second) when everything is already there.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint typecheck pytest scenes bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(BIN)/twin demo -o twin-demo

test: setup lint typecheck pytest

lint:
	$(BIN)/ruff check twin estimators tests scripts

typecheck:
	$(BIN)/mypy

pytest:
	$(BIN)/pytest -q

scenes: setup
	$(BIN)/python -m scripts.twin.make_scenes

bench: setup
	$(BIN)/python -m scripts.twin.bench_trace

clean:
	rm -rf twin-demo .pytest_cache .mypy_cache .ruff_cache
