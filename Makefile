# One-stop commands. `make conformance` is the main job, `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TYPECHECK := build/typecheck

.PHONY: install test lint typecheck contracts unit conformance example bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the project's metadata changed.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# mypy does not follow setuptools' editable finder: give it a tree of links
# that lays the folders out under the import root.
# The .pth puts that tree on the venv's path too, so a plain `lint-imports` finds
# the package (its graph builder cannot walk setuptools' editable finder either).
$(TYPECHECK)/taktora_connector: | $(BIN)/python
	mkdir -p $@
	for d in domain ports adapters conformance features; do ln -sfn ../../../$$d $@/$$d; done
	echo "$(CURDIR)/$(TYPECHECK)" > "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/taktora-typecheck.pth"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) $(TYPECHECK)/taktora_connector
	MYPYPATH=$(TYPECHECK) $(BIN)/mypy -p taktora_connector
	MYPYPATH=$(TYPECHECK) $(BIN)/mypy tests examples scripts benchmarks

contracts: $(STAMP) $(TYPECHECK)/taktora_connector
	$(BIN)/lint-imports

unit: $(STAMP)
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest $(PYTEST_ARGS)
	$(BIN)/coverage combine -q
	$(BIN)/coverage report --skip-covered | tail -n 25
	@echo "coverage total: $$($(BIN)/coverage report --format=total)%"

test: lint typecheck contracts unit

example: $(STAMP)
	$(BIN)/python examples/with_embedded_broker.py examples/quickstart.py
	$(BIN)/python examples/with_embedded_broker.py examples/async_quickstart.py

# The kit on the reference and on the gmqtt example connector, then both side by side.
# Runs all three steps; fails if any did not PASS.
conformance: $(STAMP)
	@rc=0; \
	$(BIN)/taktora-conformance -q --report-dir reports/conformance/reference || rc=1; \
	PYTHONPATH=examples $(BIN)/taktora-conformance -q --report-dir reports/conformance/gmqtt \
	    --connector-factory gmqtt_connector:make_connector || rc=1; \
	$(BIN)/taktora-conformance compare reports/conformance/reference/report.json \
	    reports/conformance/gmqtt/report.json --out reports/conformance || rc=1; \
	exit $$rc

# Benchmarks: mosquitto (started by the harness) and in-process amqtt; writes reports/bench/.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.run --out reports/bench

clean:
	rm -rf $(VENV) build dist *.egg-info reports .coverage .coverage.*
