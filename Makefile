# The two commands of the README: `make run` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# One stamp per install flavour, rebuilt when pyproject.toml changes.
$(VENV)/.stamp-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e .
	touch $@

# The benchmarks need the chain extras (bench_chain.py deploys the contracts); `make run`'s
# environment lacks them, so `make bench` adds them. dev includes them.
$(VENV)/.stamp-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[chain]'
	touch $@ $(VENV)/.stamp-run

$(VENV)/.stamp-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev]'
	touch $@ $(VENV)/.stamp-run $(VENV)/.stamp-bench

run: $(VENV)/.stamp-run
	$(BIN)/mercat reproduce all --quick --out report

# The numba kernels are compiled once into their disk cache first (mercat/warm.py): on a
# cold cache every test worker and every process a test starts would compile them at once.
test: $(VENV)/.stamp-dev
	$(BIN)/python -m mercat.warm
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(VENV)/.stamp-dev
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

bench: $(VENV)/.stamp-bench
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b; done

clean:
	rm -rf $(VENV) report build src/*.egg-info .pytest_cache
