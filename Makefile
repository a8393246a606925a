# The two commands of the README's quick start, and the pieces they are made of.
VENV := .venv/bin
export PATH := $(CURDIR)/$(VENV):$(PATH)
CORES ?= all

.PHONY: setup demo test lint unit

setup: .venv/.installed

.venv/.installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

demo: setup  ## set up, then run the demo pipeline to results/report.html
	snakemake --cores $(CORES) all

lint: setup
	ruff check src tests bench
	ruff format --check src tests bench
	snakefmt --check Snakefile workflow/rules
	python scripts/lint_workflow.py
	matssl schema --check

unit: setup
	python -m pytest -q

test: lint unit  ## the test command CI runs
