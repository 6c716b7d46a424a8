# The README's two commands: `make run` (set up, then the main job on the offline
# default) and `make test` (set up, then the test suite). Both create .venv once.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup run test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: setup
	$(PY) -m dvrl_env demo --env DataValuation-Digits-v0 --steps 5

test: setup
	$(PY) -m ruff check dvrl_env agents tests benchmarks
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/step_time.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
