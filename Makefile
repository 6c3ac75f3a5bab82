# Two commands on a fresh machine: `make demo` and `make test` (README).
# Both run scripts/setup.sh first: it installs what is missing and is a no-op
# (well under a second) when everything is already there.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint typecheck docs pytest scenes bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(BIN)/twin demo -o twin-demo

test: setup lint typecheck docs pytest

lint:
	$(BIN)/ruff check twin estimators tests scripts

typecheck:
	$(BIN)/mypy

# The docs site (mkdocs.yml) into build/site; strict: a broken link, anchor or docstring
# fails it. NO_MKDOCS_2_WARNING silences the theme's banner (not a warning of the build).
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet -d build/site

pytest:
	$(BIN)/pytest -q

scenes: setup
	$(BIN)/python -m scripts.twin.make_scenes

bench: setup
	$(BIN)/python -m scripts.twin.bench_trace

clean:
	rm -rf twin-demo build/site .pytest_cache .mypy_cache .ruff_cache
