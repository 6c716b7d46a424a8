# The README's two commands: `make run` (set up, then the main job on the offline
# default) and `make test` (set up, then the test suite). Both create .venv once.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup run test lint bench check-results clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# the tests also run dvrl bench on a real local Ray instance: the ray extra, for them only
TEST_STAMP := $(VENV)/.test-stamp
$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[dev,ray]"
	touch $(TEST_STAMP)

# The main job: value Digits' training points with 20% flipped labels (offline).
MAIN_JOB := value --env DataValuation-Digits-v0 --noise-rate 0.2 --agent reinforce \
	--agent-arg num_samples=8 --agent-arg architecture=skip --steps 30 --seed 0 \
	--out runs/digits --overwrite

run: setup
	$(VENV)/bin/dvrl $(MAIN_JOB)

test: setup $(TEST_STAMP)
	$(PY) -m ruff check dvrl_env agents tests benchmarks
	$(PY) -m pytest -q
	$(PY) tests/cpu_matrix.py
	$(PY) benchmarks/check_results.py

bench: setup
	$(PY) benchmarks/step_time.py

# Are the results the README and docs cite produced by the working tree's code?
# `make test` runs it too.
check-results: setup
	$(PY) benchmarks/check_results.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
