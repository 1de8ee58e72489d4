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

test: setup
	$(PY) -m pytest -q

bench: setup
	$(VENV)/bin/interpolant bench

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
