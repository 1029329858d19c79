# GAIA: `make demo` and `make test` are the whole set-up on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PLUGINS := $(sort $(wildcard plugins/gaia_*))
STAMP  := $(VENV)/.installed
DIST   ?= dist

.PHONY: install demo lint test test-kernel test-plugins test-native test-dist dist bench docs wasm clean

$(STAMP): pyproject.toml native/pyproject.toml native/Cargo.toml $(wildcard native/src/*.rs) $(wildcard plugins/*/pyproject.toml)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ./native -e '.[test]' $(addprefix -e ./,$(PLUGINS))
	touch $@

install: $(STAMP)  ## create .venv with the kernel, gaia-native and every plugin (editable)

demo: install  ## run the main job
	$(BIN)/gaia demo

lint: install  ## ruff (lint) over the tree and mypy (types; strict on the public kernel API), as configured in pyproject.toml
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint test-kernel test-plugins test-native  ## lint, then every test suite

test-kernel: install
	$(BIN)/python -m pytest -q tests

test-plugins: install
	@.ci/ensure-docker
	@set -e; for p in $(PLUGINS); do echo "== $$p"; $(BIN)/python -m pytest -q $$p/tests; done

test-native:
	cd native && cargo test -q

# setuptools copies sources into build/lib and packs what it finds there: stale copies are removed first.
dist:  ## wheels of every distribution (gaia-native, gaia-core, each plugin) into dist/ (DIST=DIR for another folder)
	@test -n "$(strip $(DIST))" || { echo "make dist: DIST is empty; name the folder for the wheels, e.g. DIST=dist" >&2; exit 2; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { echo "make dist: '$(PYTHON)' is not Python >= 3.11; name one with PYTHON=python3.11" >&2; exit 2; }
	@command -v cargo >/dev/null || { echo "make dist: cargo is not on PATH; gaia-native is compiled with the Rust toolchain (https://rustup.rs)" >&2; exit 2; }
	rm -rf build $(addsuffix /build,$(PLUGINS))
	rm -f $(DIST)/gaia_*.whl
	$(PYTHON) -m pip wheel --no-deps --wheel-dir $(DIST) ./native . $(addprefix ./,$(PLUGINS))

test-dist: install dist  ## build the wheels, then install gaia-core and a plugin from them into a fresh venv
	GAIA_DIST_DIR=$(abspath $(DIST)) $(BIN)/python -m pytest -q tests/test_dist.py

bench: install  ## every benchmark, printing GAIA vs its baseline
	$(BIN)/python -m pip install -q -e '.[bench]'
	@set -e; for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b; done

docs: install  ## regenerate the tutorial, plugin API and hook references in docs/plugin-authoring.md
	$(BIN)/python -m gaia_core.docgen docs/plugin-authoring.md

wasm:  ## rebuild the WASM task modules from C (needs clang, lld, wasi-libc)
	$(MAKE) -C plugins/gaia_runner_wasm wasm

clean:
	rm -rf $(VENV) native/target build dist
