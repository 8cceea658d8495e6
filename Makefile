# yinfin-flow: every target does its own set-up.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: run test docs bench lint worker beat clean babel-extract babel-update babel-compile

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

$(VENV)/.bench: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[dev,bench]'
	touch $@

## make run: install, migrate the embedded SQLite database, load the demo, serve on 127.0.0.1:5000
run: $(VENV)/.installed
	$(VENV)/bin/yinfin-flow db upgrade
	$(VENV)/bin/yinfin-flow demo load --if-empty
	$(VENV)/bin/yinfin-flow serve --host $(HOST) --port $(PORT)

## make test: install with the dev extras and run every test
test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

## make docs: the documentation site (mkdocs.yml, docs/) in strict mode, into build/docs/
docs: $(VENV)/.installed
	$(VENV)/bin/mkdocs build --strict

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check yinfin_flow connectors tests bench migrations
	$(VENV)/bin/mypy

## make bench: benchmarks on PostgreSQL beside pgbench (see bench/README.md)
bench: $(VENV)/.bench
	$(PY) -m bench

worker: $(VENV)/.installed
	$(VENV)/bin/celery -A yinfin_flow.worker.celery_app worker --loglevel=INFO

## make beat: periodic jobs (outbox sweep, approval timers, master-data sync, reconciliation);
## its schedule state goes to instance/ (not the repository root)
beat: $(VENV)/.installed
	mkdir -p instance
	$(VENV)/bin/celery -A yinfin_flow.worker.celery_app beat --loglevel=INFO -s instance/celerybeat-schedule

## the console's catalogues (yinfin_flow/web/translations; the compiled .mo files are
## committed, so a fresh clone runs without this step): extract → update → translate → compile
BABEL_DIR := yinfin_flow/web/translations
babel-extract: $(VENV)/.installed
	$(VENV)/bin/pybabel extract -F babel.cfg -k lazy --no-location --project yinfin-flow -o $(BABEL_DIR)/messages.pot .

babel-update: babel-extract
	$(VENV)/bin/pybabel update -i $(BABEL_DIR)/messages.pot -d $(BABEL_DIR) --no-fuzzy-matching --width 100

babel-compile: $(VENV)/.installed
	$(VENV)/bin/pybabel compile -d $(BABEL_DIR)

clean:
	rm -rf $(VENV) instance .pytest_cache .hypothesis
