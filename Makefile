# Two commands do all the set-up on a fresh machine (Python 3.11, pip, Debian's apt):
#   make demo   - system packages, virtual environment, install, build the demo Study, serve it
#   make test   - the same set-up, then the whole test suite (unit, browser, napari, notebooks)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
DEMO   ?= demo.study
SIZE   ?= realistic
PIP_QUIET := 2> >(grep -v 'is ignored' >&2)
SHELL  := /bin/bash

.PHONY: demo demo-quick test test-fast test-shuffled system venv bench docs clean help

help:
	@echo "make demo   build the demo Study ($(DEMO)) and serve its dashboards"
	@echo "make test   run the whole test suite"
	@echo "make demo-quick  the same on the small demo world (demo-quick.study, about a minute)"
	@echo "make bench  run the benchmarks (quick sizes)"
	@echo "make docs   build the documentation site into docs/_build/html"

system:
	bash .ci/system-deps.sh

# torch first, with pip: on Linux a plain `torch` would pick a multi-GB CUDA build; the
# range in pyproject keeps pip on the CPU build where one is provided. A GPU user installs
# the CUDA wheel of their choice into the venv before `make`.
# The rest with uv into the same venv (about 25 s instead of pip's 3-4 minutes on 2 cores):
# uv sees the installed torch as satisfying the range and keeps it. uv keeps no cache
# (nothing is written outside the project); if uv cannot install, pip does the same install.
# INSTALL_EXTRA: the extras to install (`all` for the demo, `test` for the test suite)
define install_venv
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q 'torch>=2.4,<2.14' uv $(PIP_QUIET)
	UV_NO_CACHE=1 $(BIN)/uv pip install -q --python $(BIN)/python -e '.[$(1)]' \
	  || $(BIN)/pip install -q -e '.[$(1)]' $(PIP_QUIET)
endef

$(STAMP): pyproject.toml
	$(call install_venv,test)
	touch $(STAMP)

# what the demo and a user of it need (dashboards, napari, notebooks), without the test and
# documentation tools: `make test` adds those to the same environment
$(DEMO_STAMP): pyproject.toml
	$(call install_venv,all)
	touch $(DEMO_STAMP)

venv: $(STAMP)

demo: system $(DEMO_STAMP)
	$(BIN)/workbench demo --size $(SIZE) --out $(DEMO)

demo-quick: SIZE = quick
demo-quick: DEMO = demo-quick.study
demo-quick: demo

test: system $(STAMP)
	env -u QT_QPA_PLATFORM -u DISPLAY MPLBACKEND=Agg PYTHONFAULTHANDLER=1 \
	  $(BIN)/python -m pytest -p no:cacheprovider -p no:randomly -ra --nbmake tests notebooks

test-fast: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider -p no:randomly -q -m "not browser and not napari and not slow" tests

# The tests in a shuffled order (and reseeded global RNGs): no test may depend on state
# another test left behind. SEED picks the order; run it with two seeds. MARK picks the
# tests: the unit tests by default, MARK="browser or napari" for the browser and napari ones.
SEED ?= 1
MARK ?= not browser and not napari
test-shuffled: $(STAMP)
	env -u QT_QPA_PLATFORM -u DISPLAY MPLBACKEND=Agg PYTHONFAULTHANDLER=1 \
	  $(BIN)/python -m pytest -p no:cacheprovider --randomly-seed=$(SEED) -q -m "$(MARK)" tests

# Benchmarks with a quick size run at it; the others (hours, or real data) are named with
# where their full command is.
bench: $(STAMP)
	for b in benchmarks/bench_*.py; do \
	  if grep -q '"--quick"' $$b; then echo "== $$b"; $(BIN)/python $$b --quick || exit 1; \
	  else echo "== $$b: no quick size; its docstring gives the full command"; fi; done

docs: $(STAMP)
	$(BIN)/python -m sphinx -W -b html docs docs/_build/html

clean:
	rm -rf $(VENV) demo.study demo-quick.study test-results docs/_build
