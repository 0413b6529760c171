# Two commands a newcomer needs: `make plan` (the main job) and `make test` (the tests).
# Both create .venv on first use; nothing is installed outside it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/memplace: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

.PHONY: install plan test lint crds
install: $(BIN)/memplace

plan: install  ## plan the example cluster offline, exactly as the operator would
	$(BIN)/memplace plan examples/

test: install  ## unit, property, CLI, integration (KMock) and chart tests; e2e skips without a cluster
	$(BIN)/ruff check operator tests e2e bench
	$(BIN)/lint-imports
	$(BIN)/pytest

crds: install  ## regenerate crds/ and charts/memplace/crds/ from the pydantic models
	$(BIN)/python -m memplace.api.crds
