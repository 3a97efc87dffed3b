# One-stop commands; `make` alone lists them. On a fresh machine `make conformance`
# and `make test` first make .venv and install everything into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEPS   := $(VENV)/.installed-deps
STAMP  := $(VENV)/.installed
# Every folder of the import root: a file added or removed there changes the
# folder's time, and the link tree below must be made again.
SOURCE_DIRS := $(addsuffix /.,$(shell find domain ports adapters conformance features -type d -not -name __pycache__))
PACKAGES := domain ports adapters conformance features

.DEFAULT_GOAL := help
.PHONY: help install test test-slow lint typecheck contracts unit conformance matrix cluster-test example bench clean
# Test workers (pytest-xdist). Most tests wait on sockets and brokers, so two cores
# keep six workers busy; TEST_WORKERS=0 runs the suite in one process. Each test
# file goes to one worker (--dist loadfile), so a module's fixture (a pool of kit
# runs, a built wheel) is made once. Not --dist loadgroup: with pytest 9.2 it
# stops grouping without a word (pytest-dev/pytest-xdist#1386).
TEST_WORKERS ?= 6
# Every kit run the tests make is a new Python process. Where the environment says
# PYTHONDONTWRITEBYTECODE, each one compiled this package again and pytest rewrote the
# kit's step modules again: about 0.45 s of CPU per process, some 70 processes per
# make test. Bytecode goes to __pycache__ folders (ignored by git; make clean removes them).
unexport PYTHONDONTWRITEBYTECODE

help:
	@echo "make conformance  the conformance kit against the reference connector (and the gmqtt example); reports in reports/conformance/"
	@echo "make test         ruff, mypy --strict, import-linter contracts, the tests under coverage (under 4 min)"
	@echo "make test-slow    the tests marked slow: the whole kit on every faulty connector, on a broker URL, the bench smoke; CI runs it too"
	@echo "make matrix       the kit on both connectors against amqtt, mosquitto and RabbitMQ; docs/broker-matrix.md"
	@echo "make cluster-test failover on a three-node RabbitMQ cluster on loopback: times, loss, throughput (about 3 min)"
	@echo "make example      the quick-start examples (threads and asyncio) on an embedded broker"
	@echo "make bench        the benchmarks (mosquitto and amqtt); reports in reports/bench/"
	@echo "make install      only make .venv and install the package with every extra (done by the others)"
	@echo "make lint | typecheck | contracts | unit    one part of make test"
	@echo "make clean        remove .venv, build output and reports"

$(BIN)/python:
	@echo "==> making $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The dependencies, again only when the project's metadata changed.
$(DEPS): pyproject.toml | $(BIN)/python
	@echo "==> installing taktora-connector with every extra into $(VENV) (about a minute the first time)"
	$(BIN)/python -m pip install --progress-bar off -e '.[dev]' --config-settings editable_mode=strict
	touch $@

# setuptools' strict editable install: a tree of links, build/__editable__.*/taktora_connector,
# that lays the design card's folders out under the import root, on the venv's path.
# mypy and import-linter read it like any installed package (neither can walk the
# default editable mode's import hook). It links files, not folders: a module
# added or removed means linking again, which this rule does (a few seconds).
$(STAMP): $(DEPS) $(SOURCE_DIRS)
	@rm -rf build/typecheck "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/taktora-typecheck.pth"
	$(BIN)/python -m pip install --quiet --no-deps -e . --config-settings editable_mode=strict
	touch $@

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# taktora_connector is a namespace package (no folder of its own, so no py.typed
# at its top): mypy checks its packages one by one.
typecheck: $(STAMP)
	$(BIN)/mypy $(foreach p,$(PACKAGES),-p taktora_connector.$(p))
	$(BIN)/mypy tests examples scripts benchmarks

contracts: $(STAMP)
	$(BIN)/lint-imports

# The workers are subprocesses: coverage measures each (patch = subprocess) and
# `coverage combine` adds their data files up.
unit: $(STAMP)
	@scripts/ensure-mosquitto
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow" $(PYTEST_ARGS)
	$(BIN)/coverage combine -q
	$(BIN)/coverage report --skip-covered | tail -n 25
	@echo "coverage total: $$($(BIN)/coverage report --format=total)%"
	@echo "not run here: the tests marked slow; 'make test-slow' runs them (CI does)"

# No coverage: these repeat what make test measured, only longer.
test-slow: $(STAMP)
	@scripts/ensure-mosquitto
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m slow $(PYTEST_ARGS)

# The static checks run beside the tests, which leave part of a core idle while they
# wait on brokers (20 s saved on two cores); their output is printed after the tests'.
# `make lint typecheck contracts` runs them alone (about 20 s, 10 s once mypy's cache is warm).
test: $(STAMP)
	@mkdir -p build; rm -f build/static.log build/static.rc
	@( $(MAKE) --no-print-directory -k lint typecheck contracts > build/static.log 2>&1; \
	   echo $$? > build/static.rc ) & \
	$(MAKE) --no-print-directory unit; unit=$$?; wait; \
	echo "==> the static checks (ruff, mypy --strict, import-linter), run beside the tests:"; \
	cat build/static.log; static=$$(cat build/static.rc); \
	if [ $$static -ne 0 ]; then echo "==> the static checks failed (exit $$static)"; fi; \
	[ $$unit -eq 0 ] && [ $$static -eq 0 ]

example: $(STAMP)
	$(BIN)/python examples/with_embedded_broker.py examples/quickstart.py
	$(BIN)/python examples/with_embedded_broker.py examples/async_quickstart.py

# The kit on the reference and on the gmqtt example connector, then both side by side.
# On a mosquitto the kit starts per scenario, so every scenario runs (amqtt has no
# shared subscriptions). Runs all three steps; fails if any did not PASS.
conformance: $(STAMP)
	@scripts/ensure-mosquitto
	@echo "==> the conformance kit against the reference MqttConnector (a fresh amqtt broker per scenario)"
	@rc=0; \
	$(BIN)/taktora-conformance --report-dir reports/conformance/reference || rc=1; \
	echo "==> the kit against the gmqtt example connector (examples/gmqtt_connector)"; \
	PYTHONPATH=examples $(BIN)/taktora-conformance --report-dir reports/conformance/gmqtt \
	    --connector-factory gmqtt_connector:make_connector || rc=1; \
	echo "==> both side by side (reports/conformance/)"; \
	$(BIN)/taktora-conformance compare reports/conformance/reference/report.json \
	    reports/conformance/gmqtt/report.json --out reports/conformance || rc=1; \
	exit $$rc

# The broker matrix: six kit runs (reference and gmqtt example on amqtt, mosquitto and a
# RabbitMQ node the kit starts), compared; writes docs/broker-matrix.md. About 4 minutes.
matrix: $(STAMP)
	@scripts/ensure-mosquitto
	@scripts/ensure-rabbitmq
	$(BIN)/python scripts/broker_matrix.py --out reports/matrix --doc docs/broker-matrix.md

# Benchmarks: mosquitto (started by the harness) and in-process amqtt; writes reports/bench/.
# Failover between the nodes of a real cluster: three RabbitMQ nodes on loopback (the
# script starts and stops them by PID), persistent sessions in quorum queues, the
# consumer's node killed mid-stream, 5 runs per case; asserts the bounds it prints.
cluster-test: $(STAMP)
	@scripts/ensure-rabbitmq
	$(BIN)/python scripts/cluster_test.py --json reports/cluster/cluster.json

# The metrics counters' cost: this checkout against the commit before them, side by side.
METRICS_BEFORE ?= ba4d8222bf76dcb9a79775bb62edfc34ac13c1fd

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run --out reports/bench
	$(BIN)/python benchmarks/ab.py --before $(METRICS_BEFORE) --label "the metrics counters" --json reports/bench/metrics-ab.json

clean:
	rm -rf $(VENV) build dist *.egg-info reports .coverage .coverage.*
	find . -name __pycache__ -type d -not -path "./.venv/*" -prune -exec rm -rf {} +
