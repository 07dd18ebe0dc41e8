# The two commands of the README:
#   make run    set up, then run the workflow on config/config.yaml -> results/report.html
#   make test   set up, then run the test suite
# Set-up is a virtual environment in .venv with the pinned packages of envs/.

PYTHON ?= python3
VENV ?= .venv
CORES ?= 8
STAMP := $(VENV)/.installed

# cmake and ninja from pip land in .venv/bin: put them first for every recipe.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: run test test-fast lint report clean

$(STAMP): envs/requirements.txt envs/requirements-dev.txt workflow/logger-plugin/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r envs/requirements-dev.txt
	touch $@

run: $(STAMP)
	snakemake --cores $(CORES)

test: $(STAMP)
	pytest

# The tests that build nothing, start no llama.cpp binary and run no Snakemake: under a minute.
test-fast: $(STAMP)
	pytest -m "not slow" --durations=10

lint: $(STAMP)
	snakemake --lint
	snakefmt --check .
	ruff check .

# Snakemake's own report (figures with captions), beside results/report.html.
report: $(STAMP)
	snakemake --report results/snakemake-report.html

clean:
	rm -rf results/* .snakemake
	touch results/.gitkeep
