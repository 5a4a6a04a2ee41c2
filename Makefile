# Two commands do all the set-up on a fresh machine (see README):
#   make demo   build .venv if needed, train the headline flow, write figures/
#   make test   build .venv if needed, lint, run the unit tests and every notebook (fast mode)
# Every exercise's checks are proved against planted answers by make notebooks-test and by CI's
# Colab-like run (make test-colab), which execute each notebook with tools/pytest_exercises.py.

# $(call find_python,3.11 3.13): the first interpreter whose version is one of those, found as
# pythonX.Y on PATH, under pyenv (~/.pyenv/versions/X.Y.*) or as python3. Each candidate is
# run, since a pyenv shim may exist for a version that is not active.
find_python = $(firstword $(shell for v in $(1); do \
                for p in python$$v $(HOME)/.pyenv/versions/$$v.*/bin/python$$v python3; do \
                  $$p -c "import sys; sys.exit('%d.%d' % sys.version_info[:2] != '$$v')" >/dev/null 2>&1 \
                  && { echo $$p; exit 0; }; \
                done; done))
# The series supports Python 3.10 to 3.13 (TensorFlow 2.16 to 2.21).
PYTHON ?= $(call find_python,3.11 3.12 3.13 3.10)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
TEXT   ?= Flow
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))

export TF_CPP_MIN_LOG_LEVEL := 2
export PATH := $(abspath $(BIN)):$(PATH)

# The notebooks' fast mode is the test harness's (tests/harness/fast_mode.py), not flowlib's:
# kernels started with this IPYTHONDIR shorten every training to ~5% of its steps when the
# harness's switch FLOWLIB_FAST is 1 (flowlib itself trains what it is asked).
HARNESS := FLOWLIB_FAST=1 IPYTHONDIR=$(CURDIR)/tests/harness/ipython

# Tests run in parallel, one pytest-xdist worker per core (JOBS=1 runs them one by one); in
# the test targets each worker's TensorFlow gets its share of the cores for its per-op
# threads (alone, every worker would start one per core).
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
XDIST = -n $(JOBS) --dist loadfile
# Unit tests: idle workers steal queued tests, since a few (test_train's leak test, the CLI's
# subprocesses) take far longer than the rest and whole files would unbalance the workers.
UNIT_XDIST = -n $(JOBS) --dist worksteal
TEST_TARGETS := test unit notebooks-test exercises-test grade test-colab test-oldest test-newest
# `import tensorflow` loads a Keras ahead of use: Keras 3 (and through it scikit-learn's
# estimators, ~1.7 s of each process's start) unless TF_USE_LEGACY_KERAS picks tf-keras, which
# TFP imports anyway. Nothing in the series uses Keras 3 (the layers are tf-keras', through
# TFP), so the test processes (pytest workers, kernels, the graders) preload tf-keras; the
# Colab-like run keeps TensorFlow's default, as a reader has it.
$(filter-out test-colab,$(TEST_TARGETS)): export TF_USE_LEGACY_KERAS := 1
$(TEST_TARGETS): export TF_NUM_INTRAOP_THREADS ?= $(shell n=$$(( $$(nproc 2>/dev/null || echo 2) / $(JOBS) )); \
                                                 echo $$(( n > 0 ? n : 1 )))

.PHONY: venv demo test lint unit notebooks-test exercises exercises-test grade notebooks sync lab bench \
        test-browser test-colab test-oldest test-newest book test-book clean help

help:
	@echo "make demo [TEXT=Ada]  train the headline flow on a word, write figures/"
	@echo "make test             lint, unit tests, then every notebook under nbval (fast mode)"
	@echo "make notebooks-test   every notebook, each exercise proved against its planted answers"
	@echo "make lint             ruff check and ruff format --check"
	@echo "make notebooks        re-execute every notebook in full mode, refresh outputs"
	@echo "make sync             re-pair notebooks/*.ipynb with their py:percent twins"
	@echo "make bench            benchmarks (throughput, quality per second, stability)"
	@echo "make exercises        regenerate the student copies in exercises/"
	@echo "make grade            grade a sample submission with otter-grader (tools/grading.py grades yours)"
	@echo "make test-browser     the layer explorer in headless Chromium (needs apt-get install chromium)"
	@echo "make test-colab       every notebook, exercises proved, in a Colab-like environment (Python 3.13)"
	@echo "make test-oldest      unit tests against the oldest TensorFlow/TFP we claim (Python 3.10)"
	@echo "make test-newest      unit tests and two notebooks against the newest TensorFlow we claim (Python 3.13)"
	@echo "make book             the read-along site in book/_build/html (committed outputs, no execution)"
	@echo "make test-book        build the site and open every page in headless Chromium"
	@echo "make lab              JupyterLab on the notebooks"
	@echo "make clean            remove .venv, figures and caches"

venv: $(STAMP)

# The virtual environment is rebuilt when pyproject.toml changes (the stamp names its checksum).
$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: no Python 3.10 to 3.13 found (TensorFlow 2.16-2.21 need one); set PYTHON=..."; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-*
	touch $@

demo: $(STAMP)
	$(BIN)/python -m flowlib demo --text "$(TEXT)" --out figures

# The notebooks' py:percent twins are linted (not formatted: jupytext writes them).
LINT_PATHS ?= .
lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

unit: $(STAMP)
	$(BIN)/python -m pytest $(UNIT_XDIST) --durations=10 tests

# --dist loadfile keeps each notebook in one worker (its cells share one kernel, in order);
# the notebooks go out last first (the later ones train the most), so that the long ones start
# early and the workers finish together. tools/pytest_exercises.py plants, before each exercise
# cell, the student's blank and every wrong answer of tests/exercise_mutations/ in the same
# kernel: each must fail the cell's own checks, and then the real cell must pass. This proof
# runs here and in test-colab (which CI runs), not in make test: it is a third of the notebooks'
# work under test, and make test is the contributor's loop, kept under five minutes on 2 cores.
NOTEBOOKS_LAST_FIRST := $(shell printf '%s\n' $(NOTEBOOKS) | sort -r)
notebooks-test: $(STAMP)
	$(HARNESS) MPLBACKEND=Agg $(BIN)/python -m pytest -p no:cacheprovider -p tools.pytest_exercises \
		$(XDIST) --no-loadscope-reorder --nbval-lax --nbval-current-env --nbval-cell-timeout=600 \
		$(NOTEBOOKS_LAST_FIRST)

# make test: lint, then ONE pytest session on both cores: every notebook under nbval (the
# longest first) and the unit test files (the largest first), which fill in around them. The
# unit tests include the student copies' freshness and the sample submission graded by otter
# (tests/test_grading.py: what exercises-test and grade do); tests/browser/ is left to
# test-browser and test-book. One session keeps both cores busy to the end, where separate
# runs each left one core idle while their last test finished. --dist loadfile keeps each
# notebook's cells in one worker, in order (they share one kernel); not loadgroup, which
# pytest 9.2 breaks silently (pytest-dev/pytest-xdist#1386). tests/test_grading.py goes first:
# a small file, but its otter run takes one core for half a minute. The planted answers are
# left to notebooks-test and test-colab (see notebooks-test); the plugin's own test is here.
UNIT_FILES_LARGEST_FIRST = tests/test_grading.py $(filter-out tests/test_grading.py,$(shell ls -S $$(find tests -name 'test_*.py' -not -path 'tests/browser/*')))
test: lint $(STAMP)
	$(HARNESS) MPLBACKEND=Agg $(BIN)/python -m pytest -p no:cacheprovider \
		-n $(JOBS) --dist loadfile --no-loadscope-reorder --nbval-lax --nbval-current-env \
		--nbval-cell-timeout=600 --durations=15 $(NOTEBOOKS_LAST_FIRST) $(UNIT_FILES_LARGEST_FIRST)

# The teacher's grading path, end to end (tools/grading.py): a sample submission of one notebook,
# made from its student copy with right, wrong and blank answers, graded by otter-grader's
# `otter run` against the hidden tests in tests/grading/; right answers must earn full marks.
GRADE_NOTEBOOK ?= 02_change_of_variables
grade: $(STAMP)
	$(HARNESS) MPLBACKEND=Agg $(BIN)/python tools/grading.py sample $(GRADE_NOTEBOOK)

# Student copies: every `### BEGIN SOLUTION` block of notebooks/ becomes a blank in exercises/.
exercises: $(STAMP)
	$(BIN)/python tools/exercises.py build

# The student copies are current (their blanks and checks are proved by notebooks-test).
exercises-test: $(STAMP)
	$(BIN)/python tools/exercises.py check

# The layer explorer in headless Chromium (Debian's package) against JupyterLab on loopback.
test-browser: $(STAMP)
	@command -v chromium >/dev/null || { echo "error: needs Debian's chromium (apt-get install chromium)"; exit 1; }
	$(BIN)/python -m pip install --quiet -e ".[dev,browser]"
	FLOWLIB_BROWSER_TEST=1 $(BIN)/python -m pytest -p no:cacheprovider -s tests/browser/test_layer_explorer_in_browser.py

# A Colab-like run: Colab's default runtime (tests/colab/requirements.txt: Python 3.13 and the
# versions Colab ships), a stub google.colab, so each notebook's Colab cell really runs and
# installs flowlib (the IPython start-up in tests/colab/ swaps GitHub for a wheel built from
# this checkout), then every notebook in fast mode (its start-up links the harness's, see HARNESS),
# with the planted answers of every exercise (tools/pytest_exercises.py, as notebooks-test):
# the checks are proved in the runtime the students use.
COLAB_PYTHON ?= $(call find_python,3.13)
COLAB_VENV := .venv-colab
test-colab:
	@test -n "$(COLAB_PYTHON)" || { echo "error: the Colab-like run needs Python 3.13; set COLAB_PYTHON=..."; exit 1; }
	test -x $(COLAB_VENV)/bin/python || $(COLAB_PYTHON) -m venv $(COLAB_VENV)
	$(COLAB_VENV)/bin/python -m pip install --quiet -r tests/colab/requirements.txt
	$(COLAB_VENV)/bin/python -m pip uninstall --quiet --yes flowlib 2>/dev/null || true
	rm -rf $(COLAB_VENV)/wheel && $(COLAB_VENV)/bin/python -m pip wheel --quiet --no-deps -w $(COLAB_VENV)/wheel .
	FLOWLIB_FAST=1 MPLBACKEND=Agg PYTHONPATH=$(CURDIR)/tests/colab/stub IPYTHONDIR=$(CURDIR)/tests/colab/ipython \
	FLOWLIB_LOCAL_WHEEL=$$(ls $(CURDIR)/$(COLAB_VENV)/wheel/flowlib-*.whl) \
	FLOWLIB_REPOSITORY=$$($(COLAB_VENV)/bin/python -c 'from flowlib import config; print(config.REPOSITORY)') \
	FLOWLIB_REF=$$($(COLAB_VENV)/bin/python -c 'from flowlib import config; print(config.REF)') \
		$(COLAB_VENV)/bin/python -m pytest -p no:cacheprovider -p tools.pytest_exercises $(XDIST) \
		--no-loadscope-reorder --nbval-lax --nbval-current-env --nbval-cell-timeout=600 $(NOTEBOOKS_LAST_FIRST)

# The oldest versions pyproject.toml claims (tests/oldest/requirements.txt, Python 3.10):
# the unit tests (the notebooks run in the Colab-like and newest runs).
OLDEST_PYTHON ?= $(call find_python,3.10)
OLDEST_VENV := .venv-oldest
test-oldest:
	@test -n "$(OLDEST_PYTHON)" || { echo "error: the oldest-versions run needs Python 3.10; set OLDEST_PYTHON=..."; exit 1; }
	test -x $(OLDEST_VENV)/bin/python || $(OLDEST_PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_VENV)/bin/python -m pip install --quiet -r tests/oldest/requirements.txt
	$(OLDEST_VENV)/bin/python -m pip install --quiet --no-deps -e .
	$(OLDEST_VENV)/bin/python -m pytest -p no:cacheprovider $(UNIT_XDIST) tests

# The newest versions pyproject.toml claims (tests/newest/requirements.txt, Python 3.13):
# the unit tests, and the notebooks that use the most of TFP and Keras (05: RealNVP against
# NICE; 06: the post's stack, batch norm, TFP's own RealNVP, the widgets).
NEWEST_PYTHON ?= $(call find_python,3.13)
NEWEST_VENV := .venv-newest
NEWEST_NOTEBOOKS ?= notebooks/05_realnvp.ipynb notebooks/06_full_stack.ipynb
test-newest:
	@test -n "$(NEWEST_PYTHON)" || { echo "error: the newest-versions run needs Python 3.13; set NEWEST_PYTHON=..."; exit 1; }
	test -x $(NEWEST_VENV)/bin/python || $(NEWEST_PYTHON) -m venv $(NEWEST_VENV)
	$(NEWEST_VENV)/bin/python -m pip install --quiet -r tests/newest/requirements.txt
	$(NEWEST_VENV)/bin/python -m pip install --quiet --no-deps -e .
	$(NEWEST_VENV)/bin/python -m pytest -p no:cacheprovider $(UNIT_XDIST) tests
	$(if $(strip $(NEWEST_NOTEBOOKS)),$(HARNESS) MPLBACKEND=Agg $(NEWEST_VENV)/bin/python -m pytest \
		-p no:cacheprovider $(XDIST) --nbval-lax --nbval-current-env --nbval-cell-timeout=600 $(NEWEST_NOTEBOOKS))

# The read-along site from the committed notebooks (no execution, no network): book/.
# MathJax is served with the site (book/conf.py), from the npm package, so formulas render offline.
MATHJAX_VERSION := 3.2.2
MATHJAX := build/mathjax/node_modules/mathjax/es5/tex-chtml.js
$(MATHJAX):
	@command -v npm >/dev/null || { echo "error: the site serves MathJax from its npm package: needs npm (apt-get install npm)"; exit 1; }
	npm install --silent --no-save --no-audit --no-fund --prefix build/mathjax mathjax@$(MATHJAX_VERSION)
	test -f $@

book: $(STAMP) $(MATHJAX)
	$(BIN)/python -m pip install --quiet -e ".[dev,book]"
	rm -rf book/_build
	$(BIN)/python -m sphinx -b html -c book -W --keep-going -q . book/_build/html
	@echo "open book/_build/html/index.html"

# Every page of the site in headless Chromium: loads, every image drawn, no broken internal link.
test-book: book
	@command -v chromium >/dev/null || { echo "error: needs Debian's chromium (apt-get install chromium)"; exit 1; }
	$(BIN)/python -m pip install --quiet -e ".[dev,browser,book]"
	FLOWLIB_BROWSER_TEST=1 $(BIN)/python -m pytest -p no:cacheprovider tests/browser/test_book_in_browser.py

# Full-mode execution refreshes the committed outputs that GitHub and Colab show.
notebooks: $(STAMP)
	rm -rf notebooks/checkpoints  # so "load if present, else train" really trains
	for nb in $(NOTEBOOKS); do \
		$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
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
	rm -rf $(VENV) $(COLAB_VENV) $(OLDEST_VENV) $(NEWEST_VENV) book/_build figures .pytest_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
