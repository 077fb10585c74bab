# One entry point for developers and CI. `make test` builds everything it needs
# (virtual environment, cluster binaries cached under ~/.cache/modelplane) and runs
# lint, type checks, layer contracts and every test layer.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# every subpackage: `mypy -p modelplane` would only see the first namespace root
PACKAGES := api builders bench catalog cli devcluster kube operator sizing engine routing autoscaler

.PHONY: venv test lint unit integration e2e demo crds bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check operator engine routing autoscaler tests e2e
	$(BIN)/mypy $(addprefix -p modelplane.,$(PACKAGES))
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP)
	$(BIN)/pytest tests/integration

e2e: $(STAMP)
	$(BIN)/modelplane cluster build
	$(BIN)/pytest e2e

test: $(STAMP)
	$(MAKE) lint
	$(BIN)/modelplane cluster build
	$(BIN)/pytest tests e2e

demo: $(STAMP)
	$(BIN)/modelplane cluster build
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/modelplane demo $(DEMO_ARGS)

crds: $(STAMP)
	$(BIN)/modelplane crds --out crds --out charts/modelplane/crds

clean:
	rm -rf $(VENV)
