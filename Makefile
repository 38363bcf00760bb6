# Two commands set everything up on a fresh machine (Python 3.11+, make):
#   make serve   installs the serving dependencies and serves the bundled model on :8000
#   make test    installs everything the tests need and runs the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: serve test lint model experiment prometheus clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# One stamp per dependency set, redone when pyproject.toml changes.
$(VENV)/.serve: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[train,dev]'
	touch $@ $(VENV)/.serve

serve: $(VENV)/.serve
	$(BIN)/gunicorn -c gunicorn.conf.py

# Prometheus is a real peer in the tests; install Debian's package when it is missing.
prometheus:
	@command -v prometheus >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; \
	  else echo "install Debian's 'prometheus' package (sudo apt-get install prometheus) for the scrape test"; fi; }

test: $(VENV)/.dev prometheus
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Retrain the bundled model: publishes the next version under saved_models/ecg-autoencoder/.
model: $(VENV)/.dev
	$(BIN)/python -m training

experiment: $(VENV)/.dev
	$(BIN)/python -m training.experiment

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
