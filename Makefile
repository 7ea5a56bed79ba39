# One-command set-up: everything installs into .venv. Idempotent: a stamp file
# records that the environment matches pyproject.toml.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test test-fast demo bench clean sysdeps

venv: $(STAMP)

# Solver binaries for the DOT/ASP/SMT verifiers (Debian). Skipped when present.
sysdeps:
	@command -v dot >/dev/null && command -v clingo >/dev/null && command -v z3 >/dev/null || \
	  { if [ "$$(id -u)" = 0 ]; then (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz gringo z3 >/dev/null; \
	    else echo "warning: install graphviz gringo z3 with apt for the solver verifiers" >&2; fi; }

$(STAMP): pyproject.toml Makefile
	$(MAKE) sysdeps
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	# torch first and pinned: the local CPU wheel; an unpinned torch pulls CUDA wheels.
	$(BIN)/pip install -q torch==2.13.0
	# deepspeed builds from source against the installed torch: no build isolation,
	# or its build environment would fetch an unpinned (CUDA) torch.
	DS_BUILD_OPS=0 $(BIN)/pip install -q --no-build-isolation -e '.[dev]'
	touch $(STAMP)

test: venv
	$(BIN)/python -m pytest -q --timeout=900 tests

test-fast: venv
	$(BIN)/python -m pytest -q -m "not slow" tests

demo: venv
	$(BIN)/distill demo

bench: venv
	$(BIN)/distill bench

clean:
	rm -rf $(VENV) runs/* .pytest_cache
