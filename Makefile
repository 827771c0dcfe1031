# The two commands of the README: `make run` (default campaign) and `make test` (the test suite).
# Both set up .venv first (envs/setup.sh is idempotent: a second call takes about a second).
SHELL := /bin/bash
ACTIVATE := source .venv/bin/activate
CONFIG ?= config/config.yaml
# Job slots of `make run`: 3 per 2 cores. Every job runs one thread (these small trainings gain
# nothing from a second: 31.3 s with 1, 30.5 s with 2), so 3 slots train a 3-member committee at
# once instead of two members and then one beside an idle core. `make run CORES=2` turns it off.
CORES ?= $(shell echo $$(( $$(env -u OMP_NUM_THREADS nproc) * 3 / 2 )))
PYTEST_ARGS ?=

.PHONY: setup run dry-run lint test test-fast clean-tiny

setup:
	bash envs/setup.sh

run: setup
	$(ACTIVATE) && snakemake --profile profiles/local --cores $(CORES) --configfile $(CONFIG)

dry-run: setup
	$(ACTIVATE) && snakemake -n --configfile $(CONFIG)

lint: setup
	$(ACTIVATE) && snakefmt --check Snakefile workflow/rules
	$(ACTIVATE) && snakemake --lint
	$(ACTIVATE) && ruff check workflow tests benchmarks
	$(ACTIVATE) && ruff format --check workflow tests benchmarks

# Everything: lint, the fast tests, then the slow end-to-end tests.
test: lint
	$(ACTIVATE) && pytest $(PYTEST_ARGS)

# Quick feedback while developing: no slow end-to-end tests.
test-fast: lint
	$(ACTIVATE) && pytest -m "not slow" $(PYTEST_ARGS)
