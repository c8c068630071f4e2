# Rigwarden — the two commands: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
DATA_DIR ?= ./var
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/rigwarden
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
PYTEST_ARGS ?= -n 2 --dist loadfile
export PORT DATA_DIR

.PHONY: run test test-fast venv dev-venv assets collectstatic migrate seed lint fmt typecheck checks pytest bench clean help

help:
	@echo "make run    — install, migrate, seed the demo (300 simulated miners) and start http://127.0.0.1:$(PORT)/"
	@echo "make test   — install, start PostgreSQL/Redis if stopped, lint, types, checks, tests"
	@echo "make test-fast — the edit loop: pytest without browser and slow (subprocess) tests"
	@echo "make lint | fmt | typecheck | migrate | seed | bench | clean"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.base: $(BIN)/python requirements/base.txt
	$(BIN)/pip install -q -r requirements/base.txt
	touch $@

$(VENV)/.dev: $(VENV)/.base requirements/dev.txt
	$(BIN)/pip install -q -r requirements/dev.txt
	touch $@

venv: $(VENV)/.base
dev-venv: $(VENV)/.dev

# Front-end assets come from npm at build time; nothing is loaded from a CDN at run time.
static/vendor/.stamp: package.json package-lock.json scripts/vendor-assets.sh
	bash scripts/vendor-assets.sh
	touch $@

assets: static/vendor/.stamp

# `make run` migrates quietly (-v0) so that the URL and the demo login end its output.
MANAGE_VERBOSITY ?= 1

migrate: venv
	@$(BIN)/python manage.py migrate --noinput -v $(MANAGE_VERBOSITY)

# Prints the demo login (or, with DEMO=0, how to create the first owner).
define no_demo
echo "No demo seeded. Create your first org and owner:"; \
     echo "  $(BIN)/python manage.py create_org --name 'My Org'"; \
     echo "  $(BIN)/python manage.py create_user --email you@example.com --password '…' --org my-org --role owner --staff"
endef
define seed_demo
@if [ "$${DEMO:-1}" != "0" ]; then $(BIN)/python manage.py seed_demo; \
else $(no_demo); fi
endef

seed: migrate
	$(seed_demo)

collectstatic: venv assets
	@$(BIN)/python manage.py collectstatic --noinput -v0

# The address and the login come last, after everything that prints while setting up. With the
# demo, fleet.demo seeds it, starts simulated miners (DEMO_PROTO/DEMO_ANTMINER), pairs them into
# the demo org, runs the server and stops the simulators with it (README, docs/simulator.md).
RUN_BANNER = Rigwarden on http://127.0.0.1:$(PORT)/  (embedded mode: SQLite in $(DATA_DIR), in-process tasks)
# fleet-node frames over 1 MiB get a typed close (4400) from the consumer, not a TCP drop
SERVER = $(BIN)/daphne -b 127.0.0.1 -p $(PORT) --websocket-max-message-size 4194304 --websocket-max-frame-size 4194304 config.asgi:application

run: MANAGE_VERBOSITY := 0
run: venv assets collectstatic migrate
	@echo ""
	@if [ "$${DEMO:-1}" != "0" ]; then \
	  FLEET_EMBEDDED_SCHEDULER=1 exec $(BIN)/python -m fleet.demo --banner "$(RUN_BANNER)" -- $(SERVER); \
	else \
	  echo "$(RUN_BANNER)"; $(no_demo); echo ""; \
	  FLEET_EMBEDDED_SCHEDULER=1 exec $(SERVER); \
	fi

lint: dev-venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

fmt: dev-venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: dev-venv
	$(BIN)/mypy accounts config discovery fleet fleetnode miners proxy terminals

checks: dev-venv assets
	$(BIN)/python manage.py makemigrations --check --dry-run
	DEBUG=0 SECURE_TLS=1 $(BIN)/python manage.py check --deploy --fail-level WARNING
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/python manage.py spectacular --validate --fail-on-warn --file /dev/null

pytest: dev-venv assets
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/pytest $(PYTEST_ARGS)

# The edit loop: no browser, no subprocesses, nothing slow; `make test` still runs everything.
# It expects PostgreSQL and Redis up (`make test` starts them) and needs no Chromium.
test-fast: dev-venv assets
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/pytest $(PYTEST_ARGS) -m "not browser and not slow"

test: dev-venv assets
	bash scripts/ensure-services.sh
	$(MAKE) --no-print-directory lint typecheck checks pytest

bench: dev-venv
	$(BIN)/python -m bench.sim --quick
	bash scripts/ensure-services.sh
	$(BIN)/python -m bench.telemetry --quick
	$(BIN)/python -m bench.api --quick
	$(BIN)/python -m bench.discovery --quick

clean:
	rm -rf $(VENV) static/vendor node_modules staticfiles
