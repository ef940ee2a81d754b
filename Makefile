# dshare: two commands for a fresh machine.
#   make demo   the embedded deployment (three organizations, sample data) on http://127.0.0.1:8000
#   make test   every suite (lint, types, Python, TypeScript, browser)
# Everything else here is what those two need; each step is skipped when its inputs
# have not changed, so a second run starts in seconds.

SHELL := /bin/bash
PYTHON ?= python3
# The JupyterHub line the zero-to-jupyterhub 4.4.0 hub image ships (Python 3.12 there).
PYTHON_JH5 ?= $(shell bash scripts/find-python.sh 3.12)

VENV := .venv
VENV_JH5 := .venv-jh5
BIN := $(CURDIR)/$(VENV)/bin
NODE_TOOLS := tools/node_modules/.bin
LABEXT_OUT := server_extension/dshare_server/labextension/package.json
LABEXT_SRC := $(shell find labextension/src labextension/style labextension/schema -type f 2>/dev/null) \
              $(wildcard labextension/package.json labextension/package-lock.json labextension/tsconfig.json)

export PATH := $(BIN):$(CURDIR)/$(NODE_TOOLS):$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test install install-test k8s-tools lint typecheck lock clean bench proof

demo: install
	bash scripts/python-reachable.sh $(VENV)
	$(BIN)/dshare demo

test: install-test
	bash scripts/python-reachable.sh $(VENV) $(VENV_JH5)
	bash scripts/test.sh

install: .make/system-demo $(VENV)/.installed $(NODE_TOOLS)/configurable-http-proxy $(LABEXT_OUT)

install-test: install .make/system-test $(VENV_JH5)/.installed k8s-tools

# The Kubernetes test tools (kube-apiserver, controller-manager, scheduler, etcd, kwok, the
# Argo controller, helm, np-guard's NetworkPolicy analyzer), built from the Go module proxy into a cache outside the
# checkout; rebuilt only when a pin in tools/go/ changes (about 15 minutes from nothing,
# under a second from the cache, so it always runs: the cache may have gone).
k8s-tools:
	bash scripts/k8s-tools.sh

.make/system-demo: scripts/system-deps.sh
	@mkdir -p .make
	bash scripts/system-deps.sh demo
	@touch $@

.make/system-test: scripts/system-deps.sh
	@mkdir -p .make
	bash scripts/system-deps.sh test
	@touch $@

$(VENV)/.installed: pyproject.toml requirements/constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	SKIP_JUPYTER_BUILDER=1 $(VENV)/bin/pip install -q -c requirements/constraints.txt -e ".[dev]"
	@touch $@

# The second JupyterHub line: JupyterHub 5.5.0 with KubeSpawner 7.0.0, as in the
# zero-to-jupyterhub 4.4.0 hub image. make test runs the hub-plugin suites in it too.
$(VENV_JH5)/.installed: pyproject.toml requirements/constraints-jh5.txt
	test -x $(VENV_JH5)/bin/python || $(PYTHON_JH5) -m venv $(VENV_JH5)
	SKIP_JUPYTER_BUILDER=1 $(VENV_JH5)/bin/pip install -q -c requirements/constraints-jh5.txt -e ".[dev]"
	@touch $@

$(NODE_TOOLS)/configurable-http-proxy: tools/package.json tools/package-lock.json
	cd tools && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

labextension/node_modules/.package-lock.json: labextension/package.json labextension/package-lock.json
	cd labextension && npm ci --no-audit --no-fund --loglevel=error

# Built with JupyterLab 4.6's @jupyter/builder (it calls the venv's jupyter-builder), then
# linked into the venv as `pip install` of the wheel would place it.
$(LABEXT_OUT): labextension/node_modules/.package-lock.json $(LABEXT_SRC) $(VENV)/.installed
	cd labextension && npm run build:prod
	cd server_extension && $(BIN)/jupyter labextension develop --overwrite dshare_server >/dev/null

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

bench: install
	bash scripts/bench.sh

# The full proof suite (security, reliability, performance) and its report; its quick part
# runs inside make test.
proof: install-test
	bash scripts/proof.sh

# Re-resolve the newest versions the pyproject ranges allow and pin them.
lock:
	rm -rf /tmp/dshare-lock && $(PYTHON) -m venv /tmp/dshare-lock
	/tmp/dshare-lock/bin/pip install -q -e ".[dev]"
	(echo "# Exact versions for every fresh machine. Regenerate with: make lock"; \
	 /tmp/dshare-lock/bin/pip freeze --exclude-editable | grep -v '^dshare') > requirements/constraints.txt

clean:
	rm -rf $(VENV) $(VENV_JH5) .make .k8s-bin labextension/node_modules tools/node_modules \
	       server_extension/dshare_server/labextension
