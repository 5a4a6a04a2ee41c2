# Two commands do all the set-up on a fresh machine (see README):
#   make demo   build .venv if needed, train the headline flow, write figures/
#   make test   build .venv if needed, run the unit tests and every notebook (fast mode)

# TensorFlow 2.19 supports Python 3.9 to 3.12: take the first interpreter here that runs
# and is 3.10 to 3.12 (a pyenv shim may exist for a version that is not active).
PYTHON ?= $(shell for p in python3.11 python3.12 python3.10 python3; do \
            $$p -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))' \
            >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
TEXT   ?= Flow
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))

export TF_CPP_MIN_LOG_LEVEL := 2
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: venv demo test unit notebooks-test notebooks sync lab bench clean help

help:
	@echo "make demo [TEXT=Ada]  train the headline flow on a word, write figures/"
	@echo "make test             unit tests, then every notebook under nbval (fast mode)"
	@echo "make notebooks        re-execute every notebook in full mode, refresh outputs"
	@echo "make sync             re-pair notebooks/*.ipynb with their py:percent twins"
	@echo "make bench            benchmarks (throughput, quality per second, stability)"
	@echo "make lab              JupyterLab on the notebooks"
	@echo "make clean            remove .venv, figures and caches"

venv: $(STAMP)

# The virtual environment is rebuilt when pyproject.toml changes (the stamp names its checksum).
$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: no Python 3.10 to 3.12 found (TensorFlow 2.19 needs one); set PYTHON=..."; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $@

demo: $(STAMP)
	$(BIN)/python -m flowlib demo --text "$(TEXT)" --out figures

unit: $(STAMP)
	$(BIN)/python -m pytest tests

notebooks-test: $(STAMP)
	FLOWLIB_FAST=1 MPLBACKEND=Agg $(BIN)/python -m pytest -p no:cacheprovider --nbval-lax \
		--nbval-current-env --nbval-cell-timeout=600 $(NOTEBOOKS)

test: unit notebooks-test

# Full-mode execution refreshes the committed outputs that GitHub and Colab show.
notebooks: $(STAMP)
	for nb in $(NOTEBOOKS); do \
		FLOWLIB_FAST=0 $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
			--ExecutePreprocessor.timeout=1800 $$nb || exit 1; \
		$(BIN)/jupytext --sync $$nb || exit 1; \
	done

sync: $(STAMP)
	$(BIN)/jupytext --sync notebooks/[0-9][0-9]_*.ipynb

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

clean:
	rm -rf $(VENV) figures .pytest_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
