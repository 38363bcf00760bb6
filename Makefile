# Two commands set everything up on a fresh machine (Python 3.11+, make):
#   make serve   installs the serving dependencies and serves the bundled model on :8000
#   make test    installs everything the tests need and runs the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: serve test lint tools model experiment container-test bench bench-smoke clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# One stamp per dependency set, redone when pyproject.toml changes.
$(VENV)/.serve: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[train,dev,bench]'
	touch $@ $(VENV)/.serve

serve: $(VENV)/.serve
	$(BIN)/python -m service -c gunicorn.conf.py

# Real peers of the tests, from Debian: prometheus (and promtool) for the scrape and rule
# tests, docker-compose to check the compose file, shellcheck for the deploy script, hey
# for the benchmark (and its smoke test). Installed as root with apt-get; elsewhere the
# command to run is printed and the tests that need a missing tool skip, saying which.
tools:
	@missing=; \
	for tool in prometheus docker-compose shellcheck hey; do \
	  command -v $$tool >/dev/null || missing="$$missing $$tool"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "install Debian's$$missing (sudo apt-get install$$missing) for the tests that use them"; fi; \
	fi

test: $(VENV)/.dev tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Retrain the bundled model: publishes the next version under saved_models/ecg-autoencoder/.
model: $(VENV)/.dev
	$(BIN)/python -m training

experiment: $(VENV)/.dev
	$(BIN)/python -m training.experiment

# Builds the images with podman and runs the compose stack end to end (root; installs
# podman, runc, debootstrap, docker-compose when missing). ~3 min cold, ~35 s warm.
container-test:
	deploy/container-test.sh

# The serving benchmark (~20 min on 2 cores): writes benchmarks/RESULTS.md.
bench: $(VENV)/.dev tools
	$(BIN)/python -m benchmarks

bench-smoke: $(VENV)/.dev tools
	$(BIN)/python -m benchmarks --smoke

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
