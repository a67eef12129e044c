# The two quick-start commands: `make run` and `make test`. Both create .venv when needed and install
# the project from its own files (pyproject extras), so a fresh machine needs only Python 3.11+ and make.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: run test test-quick lint bench lab clean help

help:
	@echo "make run         set up and run every runbook on a fresh sandbox, report written"
	@echo "make test        set up (test extras) and run the whole test suite, slow tests included"
	@echo "make test-quick  the test suite without the slow end-to-end tests"
	@echo "make lint        ruff and mypy"
	@echo "make bench       run the benchmarks: each figure next to its goal, also in benchmarks/results.json"
	@echo "make lab         JupyterLab on the notebooks, against a sandbox"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "meshbook needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# One stamp per set of extras, remade whenever pyproject.toml changes.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	@touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/meshbook run $(ARGS)

# A module per worker, the costliest modules first (tests/conftest.py). Three workers on the CI machine's 2
# cores: the slow modules spend about half their time waiting on the processes they start (sandbox, kernels,
# kubectl), and a third worker uses that time (measured: 618 s with two workers, 514 s with three, same load).
test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n 3 --dist loadfile $(ARGS)

test-quick: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not slow" $(ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

$(VENV)/.installed-lab: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[lab]'
	@touch $@

lab: $(VENV)/.installed-lab
	$(BIN)/meshbook lab $(ARGS)

bench: $(VENV)/.installed-test
	$(BIN)/python -m benchmarks $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
