# Quick start: `make lab` (set up + JupyterLab on examples/) and `make test` (set up + every test).
# Each target installs what it needs into .venv; nothing is assumed preinstalled but python3, node and npm.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# torch's CPU build first, so that pip never resolves the multi-GB CUDA build for the [torch] extra.
TORCH_SPEC ?= torch==2.13.0
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: lab test install install-test bench clean browser-deps

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.torch: | $(PY)
	$(PIP) install --quiet "$(TORCH_SPEC)"
	touch $@

# The JupyterLab extension is built by the install itself (hatch-jupyter-builder: npm ci + npm run build),
# so a changed front-end source reinstalls too.
FRONTEND := package.json package-lock.json tsconfig.json $(shell find extension/src extension/style -type f 2>/dev/null)

$(VENV)/.installed: pyproject.toml $(FRONTEND) $(VENV)/.torch
	$(PIP) install --quiet -e ".[torch]"
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PIP) install --quiet -e ".[torch,test]"
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# The venv's bin on PATH, so `!pykernel-ext ...` in a notebook finds the command.
lab: install
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/jupyter lab --notebook-dir=examples $(ROOT_FLAG)

test: install-test browser-deps
	PATH="$(abspath $(VENV))/bin:$$PATH" $(PY) -m pytest -q

bench: install
	$(PIP) install --quiet -e ".[torch,bench]"
	$(PY) bench/run_all.py

# Debian's Chromium for the browser tests (never a downloaded browser); needs root, as CI has.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "browser tests need Debian's chromium: sudo apt-get install -y chromium" >&2; fi; }

clean:
	rm -rf $(VENV) node_modules extension/lib pykernel_ext/labextension
