# Review Lab's commands. `make help` lists them.
# RUNTIME=native|compose picks the runtime; without it the running one is used (else native).
SHELL := /bin/bash
VENV := $(shell /usr/bin/python3 -c "import tomllib; print(tomllib.load(open('infra/install.toml','rb'))['venv'])")
BIN := $(VENV)/bin
export PATH := $(BIN):$(PATH)
ifdef RUNTIME
export REVIEWLAB_RUNTIME := $(RUNTIME)
endif

.PHONY: help setup docker images up down reset status demo tour test check lint unit lb-demo chaos load load-ui bench bench-lb bench-worker bench-flow bench-resharding bench-tracing

help: ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

setup: ## install everything the lab needs (idempotent; run as root)
	@bash infra/setup.sh

docker: ## install Docker Engine and Compose, start dockerd (idempotent; run as root)
	@bash infra/docker/install.sh

images: docker ## every image of the Compose lab (Docker installed and started first if needed)
	@bash infra/docker/images.sh

up: ## start every node and wait until all are ready
	@[ -x $(BIN)/reviewlab ] || $(MAKE) setup
	@$(BIN)/reviewlab up
	@# The machine's own programs (browser, curl) resolve www and cdn through /etc/hosts.
	@$(BIN)/reviewlab hosts install || echo "   the names resolve only by address until it is installed"

down: ## stop every node, keep the data
	@[ ! -x $(BIN)/reviewlab ] || $(BIN)/reviewlab down

reset: ## stop every node and wipe the data
	@$(BIN)/reviewlab reset
	@$(BIN)/reviewlab hosts remove

status: ## one line per node
	@$(BIN)/reviewlab status

demo: ## setup (and the images, for RUNTIME=compose) and up if needed, then Kim's review end to end
	@$(MAKE) --no-print-directory setup
	@[ "$(REVIEWLAB_RUNTIME)" != compose ] || $(MAKE) --no-print-directory images
	@$(MAKE) --no-print-directory up
	@$(BIN)/python -m reviewlab_lab.demo

tour: ## the guided tour on the running lab, Enter between steps (STEP=NAME: one step; docs/tour.md)
	@$(BIN)/reviewlab tour $(if $(STEP),run $(STEP))

test: ## unit and integration tests against the real lab (brings it up first if needed)
	@$(MAKE) --no-print-directory up
	@bash scripts/test.sh

check: lint test ## format, lint, types, then the tests

lint: ## ruff format check, ruff, mypy (strict on the shared library)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy services/common/reviewlab_common
	$(BIN)/mypy services/web/reviewlab_web services/worker/reviewlab_worker services/console/reviewlab_console infra/lab/reviewlab_lab

unit: ## unit tests only (no lab needed)
	@$(BIN)/pytest tests/unit -q

lb-demo: ## the same load under each algorithm, then a slowed web server
	@$(BIN)/python -m reviewlab_lab.lbdemo

chaos: ## kill a catalog read replica under load, watch it live, get a report (reports/)
	@$(BIN)/reviewlab chaos run replica-kill

USERS ?= 20
SPAWN ?= 5
DURATION ?= 60s
load: ## shoppers against the vIP, headless (USERS= SPAWN= DURATION=); reports in reports/
	@$(BIN)/python -m tests.load.run --users $(USERS) --spawn $(SPAWN) --duration $(DURATION)

load-ui: ## Locust's web UI on 127.0.0.1:8089, pointed at the vIP
	@$(BIN)/python -m tests.load.run --ui

bench: ## every figure side by side in one run (a-g), written to docs/benchmarks.md
	@$(BIN)/python -m tests.bench.suite

bench-lb: ## part of bench, alone: requests/s per layer x algorithm beside the ceiling
	@$(BIN)/python tests/bench/bench_lb.py

bench-worker: ## part of bench, alone: the worker's stages at 512/1024/2048 px vs inference
	@$(BIN)/python tests/bench/bench_worker.py

bench-resharding: ## rows/s a shard move copies, its write freeze, the load's rate during moves
	@$(BIN)/python -m tests.bench.bench_resharding

bench-flow: ## part of bench, alone: POST-to-cutout-ready over 50 photos through the vIP
	@$(BIN)/python tests/bench/bench_flow.py

bench-tracing: ## what tracing costs: the hot listing and POST-to-ready, traced vs untraced, one run
	@$(BIN)/python -m tests.bench.bench_tracing
