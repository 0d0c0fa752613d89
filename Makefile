# The two commands of the README, and the pieces they are made of.
# `make demo` and `make test` work on a fresh machine with Python 3.11: they create .venv themselves.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
AIRFLOW_VENV := var/airflow-venv
PEERS := flagit ioos_qc saqc
PEER_VENVS := $(PEERS:%=var/peers/%/.installed)
# What `make test` needs: ours with the test tools, Airflow's and the three peers'. They never share a file,
# so they are built side by side (pip spends much of its time waiting on downloads and the disk).
TEST_ENVS := $(VENV)/.installed-dev $(AIRFLOW_VENV)/.installed $(PEER_VENVS)
# pytest's processes (pytest-xdist), one a core: each test makes its own databases, folders and ports, and
# none needs another to have run before it, but for the browser tests (slow, so only in `make test`): there
# a module's tests share one process (`--dist loadfile`), so its site and browser are built once and its
# last test sees the others' screenshots. (`loadgroup` with an xdist_group mark would say it more
# narrowly, but pytest-xdist 3.8 under pytest 9 ignores the mark: the tests of one group ran on both.)
PYTEST_WORKERS ?= logical
# Python may keep what it compiles (__pycache__, ignored by git): with PYTHONDONTWRITEBYTECODE, as some
# images set it, every run, every xdist worker and every subprocess a test starts compiled the code and
# pytest rewrote the tests again (collection 10.8 s against 6.0 s).
unexport PYTHONDONTWRITEBYTECODE
PYTEST_PARALLEL := -n $(PYTEST_WORKERS)
# The quick loop's small tests wait on PostgreSQL and the disk as much as they compute: a process more than
# the cores ran them in 82 s against 92 s on this project's 2-core machine, back to back.
FAST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))

.PHONY: demo test test-envs test-fast lint bench-load peers translations clean

# Set up, generate a simulated network, serve it on loopback and run the nightly pipeline on it into the
# embedded SQLite database under var/, printing what it did; then serve the back end and the dashboard
# on loopback and print the address and two logins (Ctrl-C stops them), and where its mails are kept.
demo: $(VENV)/.installed
	$(BIN)/python -m devtools.demo

# Set up with the test tools (and Airflow and the benchmark's peers in their own environments, for the
# DAG's and the peers' tests), then lint, check the import contracts (the layers of pyproject.toml) and run
# every test (database tests on SQLite and PostgreSQL) on every core, listing the slowest.
test: test-envs
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-logo
	$(BIN)/python -m pytest $(PYTEST_PARALLEL) --dist loadfile --durations=15

test-envs:
	@$(MAKE) --no-print-directory --jobs=5 --output-sync=target $(TEST_ENVS)

# The quick loop while working: lint, contracts and the tests not marked slow (under 90 s).
test-fast: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-logo
	$(BIN)/python -m pytest -n $(FAST_WORKERS) -m "not slow" --durations=10

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The pages' and mails' words in every language (core/locale): extract what the code marks (babel.cfg),
# merge it into each language's catalogue (new words arrive untranslated, marked fuzzy when guessed: a
# translator fills them in), and compile the .mo files committed beside them. A new language:
# `$(BIN)/pybabel init -i core/locale/messages.pot -d core/locale -l <code>`, then this.
LOCALE := core/locale
BABEL_KEYWORDS := -k lazy_gettext -k lazy_ngettext:1,2
translations: $(VENV)/.installed
	$(BIN)/pybabel extract -F babel.cfg $(BABEL_KEYWORDS) --add-location=file --sort-output --no-wrap \
		--add-comments=TRANSLATORS: --project=GROW-WOW --ignore-dirs=".* _* var" -o $(LOCALE)/messages.pot .
	$(BIN)/pybabel update -i $(LOCALE)/messages.pot -d $(LOCALE) --no-wrap --ignore-obsolete
	$(BIN)/pybabel compile -d $(LOCALE) --statistics

bench-load: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/bench_load.py

# A new environment with pip upgraded first: pip 26 installs Airflow's packages in half the CPU time of
# Python 3.11's own pip 23 (13 s against 28 s, measured).
define new_venv
	$(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install --quiet --upgrade pip
endef

$(VENV)/bin/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "GROW-WOW needs Python 3.11 or newer"'
	$(call new_venv,$(VENV))

$(VENV)/.installed: requirements.txt | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.installed

$(AIRFLOW_VENV)/.installed: deploy/airflow/requirements.txt
	$(call new_venv,$(AIRFLOW_VENV))
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet -r deploy/airflow/requirements.txt
	touch $@

# The peers that benchmarks/bench_real.py measures detection against (flagit, ioos_qc, SaQC), each in its
# own environment var/peers/<peer> from benchmarks/peer_requirements/<peer>.txt: their packages never have
# to agree with ours or with each other's (flagit needs pandas < 2.2). benchmarks/peers.py builds a missing
# one the same way.
peers: $(PEER_VENVS)

var/peers/%/.installed: benchmarks/peer_requirements/%.txt
	$(call new_venv,var/peers/$*)
	var/peers/$*/bin/python -m pip install --quiet -r $<
	touch $@

clean:
	rm -rf $(VENV) var
