# stockpred — `make help` lists every target. Targets install what they need themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOGLEVEL ?= INFO
CELERY_WORKER := $(BIN)/celery -A workers worker --task-events --loglevel $(LOGLEVEL)

.PHONY: help install system-deps setup run status test lint format lock web worker-inference \
        worker-training worker-maintenance beat flower redis storage-setup storage-test \
        check-routes clean train predict bench chaos fuzz multihost storage-backup storage-restore ledger-upgrade backfill \
        storage-cleanup storage-monitor metrics docker-up docker-run docker-down docker-logs dev-setup

help: ## List every target with what it does
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "stockpred needs Python >= 3.11 (set PYTHON=python3.11)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[ml,dev]'
	@touch $(STAMP)

install: $(STAMP) system-deps ## Create .venv, install the locked packages and system tools if missing

# tool:package; Debian keeps PostgreSQL's initdb off PATH, in /usr/lib/postgresql/<version>/bin.
SYSTEM_TOOLS := redis-server:redis-server promtool:prometheus nginx:nginx-light initdb:postgresql \
                chromium:chromium
system-deps: ## Install redis-server, promtool (prometheus), nginx, postgresql and chromium (tests) with apt-get when missing (root)
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
	  tool=$${pair%%:*}; \
	  command -v $$tool >/dev/null 2>&1 || test -x /usr/sbin/$$tool \
	    || ls /usr/lib/postgresql/*/bin/$$tool >/dev/null 2>&1 || missing="$$missing $${pair##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing system packages:$$missing (e.g. sudo apt-get install$$missing)" >&2; exit 1; \
	  fi; \
	fi

setup: install storage-setup ## Install everything and create persistent_data (alias of install + storage-setup)

dev-setup: setup ## v3.1's development set-up: the same as setup (the dev tools are always installed)

run: install ## Run the whole process set under supervisord (Redis, web :8080, 3 workers, beat, Flower :5555)
	$(BIN)/stockpred run

status: install ## State of each process of the running `make run` (supervisorctl status)
	$(BIN)/stockpred ctl status

test: install lint ## Install, lint, then run every test (unit, integration, e2e, browser)
	$(BIN)/pytest

chaos: install ## The fault suite's longer form (Redis and worker kills, disk full, floods)
	STOCKPRED_CHAOS=full $(BIN)/pytest tests/chaos $(ARGS)

fuzz: install ## Schemathesis, all checks, 4 min on a throw-away `make run` (FUZZ_SECONDS=; the suite runs 1)
	STOCKPRED_FUZZ_SECONDS=$(or $(FUZZ_SECONDS),240) $(BIN)/pytest tests/security/test_contract_fuzz.py $(ARGS)

multihost: install ## The multi-host test alone: five hosts in network namespaces (root; STOCKPRED_KEEP_HOSTS_DIR=1 keeps their logs)
	$(BIN)/pytest tests/multihost $(ARGS)

lint: install ## ruff (lint + format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install ## Rewrite files with ruff's formatter and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

lock: ## Re-resolve dependencies from pyproject.toml into constraints.txt
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet '.[ml,dev]'
	.lock-venv/bin/pip freeze --exclude-editable | grep -v '^stockpred' > constraints.txt
	rm -rf .lock-venv

web: install ## Run the web app alone under gunicorn on WEB_PORT
	$(BIN)/gunicorn --config docker/gunicorn.conf.py

worker-inference: install ## Run the inference worker alone (-c 2)
	$(CELERY_WORKER) --queues inference --concurrency 2 --hostname inference@%h

worker-training: install ## Run the training worker alone (-c 1, one task per child)
	$(CELERY_WORKER) --queues training --concurrency 1 --max-tasks-per-child 1 --hostname training@%h

worker-maintenance: install ## Run the maintenance worker alone (-c 1)
	$(CELERY_WORKER) --queues maintenance --concurrency 1 --hostname maintenance@%h

beat: install ## Run celery beat alone (RedBeat: schedule and lock in Redis, safe on every host)
	$(BIN)/celery -A workers beat --loglevel $(LOGLEVEL)

flower: install ## Run Flower alone on 127.0.0.1:FLOWER_PORT with basic auth
	$(BIN)/celery -A workers flower --conf=workers/flowerconfig.py

redis: install ## Run the project's redis-server alone (Unix socket, or REDIS_PORT)
	$(BIN)/stockpred redis-server

storage-setup: install ## Create the persistent_data tree, config templates and secrets
	$(BIN)/stockpred setup

storage-test: install ## Check every persistent_data folder exists and is writable; print usage
	$(BIN)/stockpred storage test

ledger-upgrade: install ## Create or upgrade the forecast ledger's tables (DATABASE_URL; default SQLite in persistent_data/ledger)
	$(BIN)/stockpred ledger upgrade

backfill: install ## Replay history into the ledger, scored: make backfill [SYMBOL=NVDA] [FROM=2024-01-02] [EPOCHS=5] [ARGS=--no-lstm]
	$(BIN)/stockpred backtest $(SYMBOL) $(if $(FROM),--from $(FROM)) $(if $(EPOCHS),--epochs $(EPOCHS)) $(ARGS)

check-routes: install ## Check every task and beat entry routes to a declared queue
	$(BIN)/python -m celeryconfig

clean: ## Remove caches and build files (keeps .venv and persistent_data)
	rm -rf .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +

train: install ## Train a model through the running service: make train SYMBOL=NVDA [EPOCHS=5]
	@test -n "$(SYMBOL)" || { echo "usage: make train SYMBOL=NVDA [EPOCHS=5]" >&2; exit 2; }
	$(BIN)/stockpred train $(SYMBOL) $(if $(EPOCHS),--epochs $(EPOCHS))

predict: install ## Ask the running service for a prediction: make predict SYMBOL=NVDA [HORIZON=1]
	@test -n "$(SYMBOL)" || { echo "usage: make predict SYMBOL=NVDA [HORIZON=1]" >&2; exit 2; }
	$(BIN)/stockpred predict $(SYMBOL) --horizon $(or $(HORIZON),1)

bench: install ## Measure the performance figures (JSON on stdout and in persistent_data/monitoring/; ARGS="--only a,c")
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } \
	  || echo "no wrk (apt-get install wrk): figure (c) falls back to a slower Python load generator" >&2
	$(BIN)/python -m tests.bench $(ARGS)

storage-backup: install ## Back up persistent_data (ARGS="--incremental", "--categories models,config", …)
	$(BIN)/stockpred storage backup $(ARGS)

storage-restore: install ## Verify then restore a backup: make storage-restore BACKUP=file.tar.gz [ARGS=--dry-run]
	$(BIN)/stockpred storage restore $(BACKUP) $(ARGS)

storage-cleanup: install ## Remove expired caches, old logs and predictions (ARGS=--dry-run to preview)
	$(BIN)/stockpred storage cleanup $(ARGS)

storage-monitor: install ## Storage usage and health report (exit 1 when unhealthy)
	$(BIN)/stockpred storage monitor $(ARGS)

metrics: install ## Run the metrics exporter alone (worker metrics and facts on METRICS_PORT)
	$(BIN)/stockpred exporter

COMPOSE := docker compose -f docker-compose-persistent.yml
docker-up: storage-setup ## Build and start the docker compose stack (needs a Docker engine)
	$(COMPOSE) up -d --build

docker-run: docker-up ## v3.1's name for docker-up

docker-down: ## Stop the docker compose stack (data stays in persistent_data)
	$(COMPOSE) down

docker-logs: ## Follow the docker compose stack's logs
	$(COMPOSE) logs -f --tail 100
