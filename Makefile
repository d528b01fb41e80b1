# Two commands on a fresh machine with Python 3.11+:
#   make demo   creates .venv, installs batchscore, runs the main job on embedded defaults
#   make test   creates .venv, installs everything (all extras), runs the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo-output

.PHONY: demo test lint install install-dev clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "batchscore needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[demo]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[demo,test,postgres,smoothing,ray,service,azure,mlops,streaming]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/python examples/demo.py --out $(DEMO_DIR)

test: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/python -m pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests examples benchmarks

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache
