# The README's two commands are `make run` and `make test`; both install what they need first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp
# The trigger index compiled with mypyc, and its C loop, in place (setup.py); rebuilt when
# their sources change.
COMPILED := $(VENV)/.compiled-stamp
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$(CURDIR)/.tools/bin:$(PATH)

.PHONY: install run test unit lint typecheck proto proto-check proto-lint chart-check bench clean

$(STAMP): pyproject.toml setup.py
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	CRMFLOW_PURE_PYTHON=1 $(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

$(COMPILED): $(STAMP) setup.py src/crmflow/criteria/index.py src/crmflow/criteria/_native.c
	$(BIN)/python setup.py -q build_ext --inplace --force > $(VENV)/compile.log 2>&1 \
	  || { cat $(VENV)/compile.log; exit 1; }
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(STAMP) $(COMPILED) $(NODE_STAMP)

## run: the whole stack on this machine (Temporal dev server + UI, four services). Ctrl-C stops it.
run: install
	$(BIN)/crmflow up

## test: every check CI runs.
test: install proto-lint proto-check lint typecheck chart-check unit

unit: $(STAMP) $(COMPILED)
	CRMFLOW_EXPECT_COMPILED=1 $(BIN)/python -m pytest -q -p no:cacheprovider

proto: $(STAMP)
	$(BIN)/python scripts/gen_proto.py

proto-check: $(STAMP)
	$(BIN)/python scripts/gen_proto.py --check

proto-lint: $(NODE_STAMP)
	buf lint proto

lint: $(STAMP)
	$(BIN)/ruff check src services tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy src services

chart-check: install
	bash scripts/chart_checks.sh

## bench: every benchmark under bench/, one report (bench/reports/report.md).
bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) node_modules .tools .data .pytest_cache .mypy_cache .ruff_cache build
	find src services -name '*.so' -delete
