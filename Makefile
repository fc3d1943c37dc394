# The front door. Each target calls one tool; `make help` lists them.
# The tooling venv (Python >= 3.10) is bootstrapped on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := _build/venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
SPHINXOPTS ?= -W --keep-going -q
MATRIX ?= code/matrix.toml
VARIANTS ?=
N ?= 20
FROM ?= 0.3
TO ?= 0.5

.DEFAULT_GOAL := help
.PHONY: help venv repro repro-check bisect html test test-fast serve bench publish clean lint

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
		{ echo "error: the tooling needs Python >= 3.10; run: make PYTHON=/path/to/python3.11"; exit 2; }
	@echo "venv: installing the pinned tooling into $(VENV)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP) ## bootstrap the tooling venv

repro: $(STAMP) ## run the matrix and store fresh evidence (VARIANTS=a,b for a subset)
	$(PY) -m reprokit repro --matrix $(MATRIX) $(if $(VARIANTS),--variants "$(VARIANTS)")

repro-check: $(STAMP) ## run every variant N times (default 20) and count the verdicts
	$(PY) -m reprokit check --matrix $(MATRIX) --runs $(N) $(if $(VARIANTS),--variants "$(VARIANTS)")

bisect: $(STAMP) ## verdict for every release FROM..TO (SAVE=1 stores evidence, ADD=1 adds variants)
	$(PY) -m reprokit bisect --matrix $(MATRIX) $(PACKAGE) --from $(FROM) --to $(TO) $(if $(SAVE),--save) $(if $(ADD),--add-variants)

html: $(STAMP) ## build the blog into _build/html
	$(PY) -m sphinx -b html $(SPHINXOPTS) . _build/html

test: $(STAMP) ## run every test (fast and slow tiers)
	$(PY) -m pytest

test-fast: $(STAMP) ## run the fast tier only
	$(PY) -m pytest -m "not slow"

serve: $(STAMP) ## run SecantusDB with the legacy wire gateway until Ctrl-C
	$(PY) -m reprokit serve

bench: $(STAMP) ## print the benchmark ratios
	$(PY) -m reprokit bench

publish: $(STAMP) ## clean build, then push _build/html to gh-pages (DRY_RUN=1 to preview)
	rm -rf _build/html _build/doctrees
	$(MAKE) html
	$(PY) -m reprokit publish $(if $(DRY_RUN),--dry-run) $(if $(REMOTE),--remote $(REMOTE))

lint: $(STAMP) ## ruff and mypy
	$(PY) -m ruff check reprokit tests
	$(PY) -m mypy

clean: ## remove build output (keeps cached environments and the tooling venv)
	rm -rf _build/html _build/doctrees _build/screenshots
