# One entry point for developers and CI. `make test` builds everything it needs
# (virtual environment, cluster binaries cached under ~/.cache/tierserve) and runs
# lint, type checks, layer contracts and every test layer.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Source roots hold the namespace package `tierserve` (`<root>/tierserve/<component>`);
# `mypy -p tierserve` would only see the first root, so list every component, derived.
COMPONENT_INITS := $(wildcard */tierserve/*/__init__.py)
ROOTS := $(sort $(foreach f,$(COMPONENT_INITS),$(firstword $(subst /, ,$(f)))))
COMPONENTS := $(foreach f,$(COMPONENT_INITS),$(word 3,$(subst /, ,$(f))))
# Test packages: top-level directories that are regular packages (tests, e2e).
TEST_PACKAGES := $(patsubst %/__init__.py,%,$(wildcard */__init__.py))
MYPY_TARGETS := $(addprefix -p tierserve.,$(COMPONENTS)) $(addprefix -p ,$(TEST_PACKAGES)) \
	-m conftest

.PHONY: venv test lint unit integration e2e demo crds dashboards values-doc rules bench clean

# llama-cpp-python ships as a source distribution that compiles llama.cpp (minutes): its
# wheel is built once into WHEELS and installed from there, so a warm machine never
# rebuilds. Keep the version equal to the `llamacpp` extra's pin in pyproject.toml.
# llama.cpp's default build is -march=native: on a machine whose CPU reports AMX but
# whose hypervisor does not grant the AMX tile state, that wheel dies of SIGILL
# (`tilezero`) on its first matrix multiply, and a cached native wheel is not portable
# to another CPU either. So on x86-64 it is built for x86-64-v3 (AVX2, FMA, F16C), which
# every x86 server of the last decade runs, with the same flags as the engine image
# (images/engine-llamacpp/Dockerfile), and the cache is keyed by that flavour.
WHEELS ?= $(HOME)/.cache/tierserve/wheels/$(LLAMA_CPP_FLAVOUR)
LLAMA_CPP_VERSION := 0.3.36
ifeq ($(shell uname -m),x86_64)
LLAMA_CPP_FLAVOUR := x86-64-v3
LLAMA_CPP_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
else
LLAMA_CPP_FLAVOUR := native
LLAMA_CPP_CMAKE_ARGS :=
endif

$(STAMP): pyproject.toml dev/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	ls $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || \
		CMAKE_BUILD_PARALLEL_LEVEL=2 CMAKE_ARGS="$(LLAMA_CPP_CMAKE_ARGS)" $(BIN)/pip wheel --no-deps --no-cache-dir \
			llama-cpp-python==$(LLAMA_CPP_VERSION) -w $(WHEELS)
	$(BIN)/pip install --quiet --find-links $(WHEELS) llama-cpp-python==$(LLAMA_CPP_VERSION)
	$(BIN)/pip install --quiet --find-links $(WHEELS) -e '.[dev]' -e ./dev
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check $(ROOTS) $(TEST_PACKAGES) conftest.py
	$(BIN)/mypy $(MYPY_TARGETS)
	$(BIN)/lint-imports

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: $(STAMP)
	$(BIN)/pytest tests/integration

e2e: $(STAMP)
	$(BIN)/tierserve-dev cluster build
	$(BIN)/pytest e2e

test: $(STAMP)
	$(MAKE) lint
	$(BIN)/tierserve-dev cluster build
	$(BIN)/pytest tests e2e

# The main job on this machine (dev/tierserve/dev/demo): builds the cluster binaries when
# they are not cached (saying how long first), serves the example models, drives traffic,
# autoscales and writes demo-output/. DEMO_ARGS: e.g. --keep, --short.
demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/tierserve-dev demo $(DEMO_ARGS)

# The CRDs from the API types, and docs/api.md's field reference from the CRDs (unit tests
# fail while either is stale).
crds: $(STAMP)
	$(BIN)/tierserve crds --out crds --out charts/tierserve/crds
	$(BIN)/python -m tierserve.dev.api_doc

# The dashboards' JSON (dashboards/json and the chart's copy); a unit test fails when stale.
dashboards: $(STAMP)
	$(BIN)/tierserve dashboards generate

# docs/values.md from the chart's schema and values (tests/unit/test_values_doc.py fails
# when it is stale)
values-doc: $(STAMP)
	$(BIN)/python -m tierserve.dev.values_doc

# The chart can only read files under its own directory: it ships a copy of the alert and
# recording rules (tests/unit/test_rules.py fails when the copy differs).
rules:
	mkdir -p charts/tierserve/rules
	rm -f charts/tierserve/rules/*.yaml
	cp dashboards/rules/*.yaml charts/tierserve/rules/

clean:
	rm -rf $(VENV)
