# paysight: `make demo` sets everything up and runs the platform on embedded defaults;
# `make test` runs the checks. Both are idempotent and fast on a second run.

PYTHON ?= python3
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
DBT_FILES := $(shell find dbt_project/models dbt_project/macros dbt_project/tests dbt_project/seeds -type f 2>/dev/null) dbt_project/dbt_project.yml dbt_project/profiles.yml

export DAGSTER_HOME := $(CURDIR)/.dagster
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)

DEMO_ARGS ?=
PYTEST_ARGS ?= -n 2

.PHONY: setup demo test lint format ui mlflow docs clean

setup: $(VENV)/.synced dbt_project/target/manifest.json $(DAGSTER_HOME)/dagster.yaml

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python 3.11
	@touch $@

dbt_project/target/manifest.json: $(VENV)/.synced $(DBT_FILES)
	cd dbt_project && ../$(BIN)/dbt parse --quiet --profiles-dir .
	@touch $@

$(DAGSTER_HOME)/dagster.yaml: deploy/dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp deploy/dagster.yaml $@

demo: setup
	$(BIN)/paysight demo $(DEMO_ARGS)

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

ui: setup
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

mlflow: setup
	$(BIN)/mlflow ui --host 127.0.0.1 --port 5000 --backend-store-uri sqlite:///data/mlflow.db --default-artifact-root data/mlartifacts

# dbt docs for the warehouse the settings point at (PAYSIGHT_WAREHOUSE_PATH / .env; build it
# with `make demo`), served on 127.0.0.1 only. DOCS_PORT=8081 make docs to change the port.
DOCS_PORT ?= 8080
docs: setup
	@warehouse="$$($(BIN)/python -c 'from orchestration.lib.env import get_settings; print(get_settings().warehouse_path)')" && \
	if [ ! -f "$$warehouse" ]; then echo "no warehouse at $$warehouse: run 'make demo' first" >&2; exit 1; fi && \
	cd dbt_project && \
	PAYSIGHT_WAREHOUSE_PATH="$$warehouse" ../$(BIN)/dbt docs generate --profiles-dir . && \
	PAYSIGHT_WAREHOUSE_PATH="$$warehouse" ../$(BIN)/dbt docs serve --profiles-dir . --host 127.0.0.1 --port $(DOCS_PORT) --no-browser

clean:
	rm -rf data .dagster dbt_project/target
