# Set-up and the two front-door commands. `make demo` and `make test` create .venv on first
# use; running them again reinstalls nothing unless pyproject.toml changed.
#
# The CPU build of torch comes from the local disk by default. With a GPU, choose another:
#   make setup TORCH_SPEC="torch==2.5.1" TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cu124"

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
PIP := $(VENV)/bin/pip
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(PIP) install -e ".[test]"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/interpolant demo

test: setup browser
	$(PY) -m pytest -q

# Headless Chromium for the report tests (tests/test_report.py). Quiet and instant when a
# browser is present (or INTERPOLANT_CHROMIUM names one); otherwise installs the Debian package
# `chromium` with apt-get, as root or with passwordless sudo. Without either it fails under CI
# (where the browser tests must run) and elsewhere says the browser tests will be skipped.
.PHONY: browser
browser:
	@if [ -n "$$INTERPOLANT_CHROMIUM" ] || command -v chromium >/dev/null 2>&1 \
	  || command -v chromium-browser >/dev/null 2>&1 || command -v google-chrome >/dev/null 2>&1; \
	then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then SUDO=""; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	elif [ -n "$$CI" ]; then \
	  echo "make browser: Chromium is missing and installing it needs root or sudo;" \
	    "the report tests must run under CI, so this is an error" >&2; exit 1; \
	else \
	  echo "make browser: Chromium is missing and there is no root or sudo to install it;" \
	    "the browser tests will be skipped (install the Debian package 'chromium')" >&2; exit 0; \
	fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "make browser: Chromium is missing and there is no apt-get to install it;" \
	    "install Chromium or set INTERPOLANT_CHROMIUM" >&2; exit 1; fi; \
	echo "make browser: installing Chromium (Debian package chromium) ..."; \
	log=$$(mktemp); \
	install="$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium"; \
	if $$install >"$$log" 2>&1 || { $$SUDO apt-get update -qq >>"$$log" 2>&1 && $$install >>"$$log" 2>&1; }; \
	then rm -f "$$log"; echo "make browser: installed $$(chromium --version 2>/dev/null)"; \
	else tail -n 25 "$$log" >&2; rm -f "$$log"; \
	  echo "make browser: could not install Chromium with apt-get (log above)" >&2; exit 1; fi

bench: setup
	$(VENV)/bin/interpolant bench solvers
	$(VENV)/bin/interpolant bench training

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
