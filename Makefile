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

.PHONY: venv demo test unit notebooks-test exercises exercises-test notebooks sync lab bench \
        test-browser test-colab test-oldest clean help

help:
	@echo "make demo [TEXT=Ada]  train the headline flow on a word, write figures/"
	@echo "make test             unit tests, then every notebook under nbval (fast mode)"
	@echo "make notebooks        re-execute every notebook in full mode, refresh outputs"
	@echo "make sync             re-pair notebooks/*.ipynb with their py:percent twins"
	@echo "make bench            benchmarks (throughput, quality per second, stability)"
	@echo "make exercises        regenerate the student copies in exercises/"
	@echo "make test-browser     the layer explorer in headless Chromium (needs apt-get install chromium)"
	@echo "make test-colab       every notebook in a Colab-like environment (Python 3.12, Colab's versions)"
	@echo "make test-oldest      unit tests against the oldest TensorFlow/TFP we claim"
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

test: unit notebooks-test exercises-test

# Student copies: every `### BEGIN SOLUTION` block of notebooks/ becomes a blank in exercises/.
exercises: $(STAMP)
	$(BIN)/python tools/exercises.py build

# The copies are current; and one execution per notebook (fast mode) proves that every
# blank raises, every planted wrong answer of tests/exercise_mutations/ fails the
# notebook's own checks, and nothing else fails (see tools/exercises.py).
exercises-test: $(STAMP)
	$(BIN)/python tools/exercises.py check
	MPLBACKEND=Agg $(BIN)/python tools/exercises.py mutants

# The layer explorer in headless Chromium (Debian's package) against JupyterLab on loopback.
test-browser: $(STAMP)
	@command -v chromium >/dev/null || { echo "error: needs Debian's chromium (apt-get install chromium)"; exit 1; }
	$(BIN)/python -m pip install --quiet -e ".[dev,browser]"
	FLOWLIB_BROWSER_TEST=1 $(BIN)/python -m pytest -p no:cacheprovider -s tests/browser

# A Colab-like run: Python 3.12 and the versions Colab ships (tests/colab/requirements.txt),
# a stub google.colab, so each notebook's Colab cell really runs (installing flowlib from
# this checkout instead of GitHub), then every notebook in fast mode.
COLAB_PYTHON ?= $(shell for p in python3.12 $(HOME)/.pyenv/versions/3.12*/bin/python3.12; do \
                  $$p -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1 \
                  && { echo $$p; break; }; done)
COLAB_VENV := .venv-colab
test-colab:
	@test -n "$(COLAB_PYTHON)" || { echo "error: the Colab-like run needs Python 3.12; set COLAB_PYTHON=..."; exit 1; }
	test -x $(COLAB_VENV)/bin/python || $(COLAB_PYTHON) -m venv $(COLAB_VENV)
	$(COLAB_VENV)/bin/python -m pip install --quiet -r tests/colab/requirements.txt
	$(COLAB_VENV)/bin/python -m pip uninstall --quiet --yes flowlib 2>/dev/null || true
	FLOWLIB_FAST=1 MPLBACKEND=Agg PYTHONPATH=$(CURDIR)/tests/colab/stub IPYTHONDIR=$(CURDIR)/tests/colab/ipython \
	FLOWLIB_LOCAL_CHECKOUT=$(CURDIR) \
	FLOWLIB_REPOSITORY=$$($(BIN)/python -c 'from flowlib import config; print(config.REPOSITORY)') \
	FLOWLIB_REF=$$($(BIN)/python -c 'from flowlib import config; print(config.REF)') \
		$(COLAB_VENV)/bin/python -m pytest -p no:cacheprovider --nbval-lax --nbval-current-env \
		--nbval-cell-timeout=600 $(NOTEBOOKS)

# The oldest versions pyproject.toml claims (tests/oldest/requirements.txt): unit tests.
OLDEST_VENV := .venv-oldest
test-oldest: $(STAMP)
	test -x $(OLDEST_VENV)/bin/python || $(PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/python -m pip install --quiet -r tests/oldest/requirements.txt
	$(OLDEST_VENV)/bin/python -m pip install --quiet --no-deps -e .
	$(OLDEST_VENV)/bin/python -m pytest -p no:cacheprovider tests

# Full-mode execution refreshes the committed outputs that GitHub and Colab show.
notebooks: $(STAMP)
	rm -rf notebooks/checkpoints  # so "load if present, else train" really trains
	for nb in $(NOTEBOOKS); do \
		FLOWLIB_FAST=0 $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
			--ExecutePreprocessor.timeout=1800 $$nb || exit 1; \
		$(BIN)/python tools/clean_outputs.py $$nb || exit 1; \
		$(BIN)/jupytext --sync $$nb || exit 1; \
	done

sync: $(STAMP)
	$(BIN)/jupytext --sync notebooks/[0-9][0-9]_*.ipynb

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

clean:
	rm -rf $(VENV) $(COLAB_VENV) $(OLDEST_VENV) figures .pytest_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
