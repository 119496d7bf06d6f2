# Two commands do all the set-up on a fresh machine:
#   make demo   local control plane + CRDs + operator + examples, with progress
#   make test   lint, type-check, and the whole test suite against a real kube-apiserver
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint unit integration controlplane crds manifests helm clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

controlplane: $(STAMP)
	$(BIN)/certctl-operator dev build

demo: controlplane
	$(BIN)/certctl-operator dev up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint controlplane
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest tests/unit

integration: controlplane
	$(BIN)/pytest tests/integration

# crds/ from the API models, then the chart's copy and manifests/ from crds/ and the chart.
crds: $(STAMP)
	$(BIN)/certctl-operator crdgen
	$(BIN)/python -m certctl_operator.apidocs
	$(BIN)/python -m certctl_operator.dev.render_manifests

# manifests/ (and the chart's CRD copy) rendered from the Helm chart; builds helm once.
manifests: $(STAMP)
	$(BIN)/python -m certctl_operator.dev.render_manifests

helm: $(STAMP)
	$(BIN)/python -m certctl_operator.dev.helm

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
