# The two commands of the README's quick start: `make demo` and `make test`.
# TORCH is the torch requirement installed into the venv. The default pins the
# CPU build this machine serves from a local wheel; a GPU user runs
# `make demo TORCH=torch` (or installs a CUDA torch into .venv first: an
# installed torch is kept).
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
STDLIB := $(shell python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
DEMO_MINUTES ?= 5

.PHONY: setup demo train-demo test lint pytest e2e clean tools

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@python3 -c 'import ensurepip' 2>/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; } \
		|| { echo "python3 cannot make virtual environments: install python3-venv (sudo apt-get install python3-venv)"; exit 1; }
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -c 'import torch' 2>/dev/null || $(PY) -m pip install -q --disable-pip-version-check '$(TORCH)'
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,train]'
	touch $@

demo: setup
	@echo "== a Python function from the bundled model"
	$(VENV)/bin/charcode hallucinate --language python --seed 8
	@echo "== a C function from the bundled model"
	$(VENV)/bin/charcode hallucinate --language c --seed 1
	@echo "== a Lua function from the bundled model"
	$(VENV)/bin/charcode hallucinate --language lua --seed 0
	@echo "== a Go function from the bundled model"
	$(VENV)/bin/charcode hallucinate --language go --seed 0
	@echo "== the models charcode finds"
	$(VENV)/bin/charcode models

# Train your own: a small Python model on the installed standard library, then use it.
train-demo: setup
	$(VENV)/bin/charcode train --language python --repo $(STDLIB) --size small --minutes $(DEMO_MINUTES) --output runs/python.safetensors
	$(VENV)/bin/charcode hallucinate --model runs/python.safetensors --count 2 --seed 1

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Tools some tests use, from Debian, when we may install them: luac (Lua syntax checks in
# evaluation tests); Emacs 28 with eglot and lsp-mode (tests/server/test_emacs.py).
EMACS_PACKAGES := emacs-nox elpa-eglot elpa-lsp-mode
tools:
	@command -v luac5.4 >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get update -qq && apt-get install -y -qq lua5.4 >/dev/null) || echo "note: lua5.4 not installed; Lua checks are skipped"; }
	@{ command -v emacs >/dev/null && dpkg -s elpa-eglot elpa-lsp-mode >/dev/null 2>&1; } || \
		{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(EMACS_PACKAGES) >/dev/null) || \
		echo "note: $(EMACS_PACKAGES) not installed; the Emacs tests are skipped"; }

pytest: setup tools
	$(VENV)/bin/pytest -q; code=$$?; if [ $$code -eq 5 ]; then echo "no tests collected"; exit 1; fi; exit $$code

e2e: setup
	if [ -x client-vscode/scripts/ci.sh ]; then CHARCODE_PYTHON=$(abspath $(PY)) bash client-vscode/scripts/ci.sh; fi

test: lint pytest e2e

clean:
	rm -rf $(VENV) runs
