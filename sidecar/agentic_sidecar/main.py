"""agentic-sidecar: takes classification batches from the module (AGENT.SIDECAR.NEXT), embeds
them with the same model on a GPU or the CPU, and returns the vectors (AGENT.SIDECAR.RESULT).

Environment (the reference enricher's names where they exist):
  VALKEY_URL        redis://127.0.0.1:6379
  MODEL_DIR         the module's model-dir (model.onnx + tokenizer.json); must be the same files
  ENRICH_USE_CUDA   auto (GPU when PyTorch sees one) | 1 (GPU or exit) | 0 (CPU)
  ENRICH_BATCH      most texts per batch (64)
  SIDECAR_ID        name in AGENT.SIDECAR.LIST (host-pid)
  SIDECAR_BACKEND   auto | torch | onnxruntime (CPU only)
  SIDECAR_BLOCK_MS  how long one NEXT waits for work (1000)
  METRICS_PORT      Prometheus /metrics (9122; 0 = off)
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time

import numpy as np
import redis
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from . import backends, tokens
from .model_files import fingerprint

log = logging.getLogger("agentic-sidecar")

BATCHES = Counter("sidecar_batches_total", "Batches embedded and returned")
TEXTS = Counter("sidecar_texts_total", "Texts embedded and returned")
FAILURES = Counter("sidecar_failures_total", "Batches reported failed to the module (the CPU pool takes them)")
REFUSED = Counter("sidecar_results_refused_total", "Results the module refused (late: the batch already went to the CPU)")
RECONNECTS = Counter("sidecar_reconnects_total", "Lost connections to Valkey")
BATCH_SECONDS = Histogram("sidecar_batch_seconds", "Time to embed one batch", buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
GPU = Gauge("enrich_gpu", "1 when this sidecar runs the model on a CUDA device")


def env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="agentic-sidecar", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--valkey", default=env("VALKEY_URL", "redis://127.0.0.1:6379"))
    p.add_argument("--model-dir", default=env("MODEL_DIR", ""))
    p.add_argument("--use-cuda", default=env("ENRICH_USE_CUDA", "auto"), choices=["auto", "1", "0"])
    p.add_argument("--batch", type=int, default=int(env("ENRICH_BATCH", "64")))
    p.add_argument("--id", default=env("SIDECAR_ID", f"{socket.gethostname()}-{os.getpid()}"))
    p.add_argument("--backend", default=env("SIDECAR_BACKEND", "auto"), choices=["auto", "torch", "onnxruntime"])
    p.add_argument("--block-ms", type=int, default=int(env("SIDECAR_BLOCK_MS", "1000")))
    p.add_argument("--metrics-port", type=int, default=int(env("METRICS_PORT", "9122")))
    a = p.parse_args(argv)
    if not a.model_dir or not os.path.isfile(os.path.join(a.model_dir, "model.onnx")) or not os.path.isfile(os.path.join(a.model_dir, "tokenizer.json")):
        p.error(f"MODEL_DIR / --model-dir must hold model.onnx and tokenizer.json (the module's model-dir), got {a.model_dir!r}")
    if not 1 <= a.batch <= 4096:
        p.error("ENRICH_BATCH / --batch must be 1-4096")
    if not 0 <= a.block_ms <= 60000:
        p.error("SIDECAR_BLOCK_MS / --block-ms must be 0-60000")
    return a


class Sidecar:
    def __init__(self, args: argparse.Namespace, stop: threading.Event):
        self.args = args
        self.stop = stop
        self.encoder, self.device = backends.choose(args.model_dir, args.use_cuda, args.backend)
        self.tokenizer = tokens.load(os.path.join(args.model_dir, "tokenizer.json"))
        self.fingerprint = fingerprint(args.model_dir)
        # Test hooks: a slow or failing model, to exercise the module's fallbacks.
        self.debug_delay = float(env("SIDECAR_DEBUG_DELAY_MS", "0")) / 1000.0
        self.debug_fail = env("SIDECAR_DEBUG_FAIL", "0") == "1"
        GPU.set(1 if self.device.startswith("cuda") else 0)

    def embed(self, texts: list[str], max_tokens: int) -> np.ndarray:
        toks = [tokens.tokenize(self.tokenizer, t, max_tokens) for t in texts]
        # Similar lengths together: less padding; results go back in the original order.
        order = sorted(range(len(toks)), key=lambda i: len(toks[i][0]))
        out = np.zeros((len(toks), self.encoder.dim), dtype=np.float32)
        step = 64
        for start in range(0, len(order), step):
            chunk = order[start : start + step]
            out[chunk] = self.encoder.embed([toks[i] for i in chunk])
        return out

    def serve_one(self, conn: redis.Redis) -> None:
        a = self.args
        reply = conn.execute_command("AGENT.SIDECAR.NEXT", a.id, "DEVICE", self.device, "MODEL", self.fingerprint, "BATCH", a.batch, "BLOCK", a.block_ms)
        if reply is None:
            return
        batch_id, max_tokens, texts = int(reply[0]), int(reply[1]), [t.decode("utf-8", "replace") for t in reply[2]]
        started = time.perf_counter()
        try:
            if self.debug_delay:
                time.sleep(self.debug_delay)
            if self.debug_fail:
                raise RuntimeError("SIDECAR_DEBUG_FAIL is set")
            vectors = self.embed(texts, max_tokens)
        except Exception as e:  # the module must hear about any failure, or it waits for the timeout
            FAILURES.inc()
            log.warning("batch %s failed: %s", batch_id, e)
            conn.execute_command("AGENT.SIDECAR.RESULT", a.id, batch_id, "ERROR", str(e)[:500])
            return
        BATCH_SECONDS.observe(time.perf_counter() - started)
        try:
            conn.execute_command("AGENT.SIDECAR.RESULT", a.id, batch_id, "VECTORS", vectors.shape[1], vectors.astype("<f4").tobytes())
        except redis.ResponseError as e:
            REFUSED.inc()
            log.warning("the module refused batch %s: %s", batch_id, e)
            return
        BATCHES.inc()
        TEXTS.inc(len(texts))

    def run(self) -> int:
        log.info("sidecar %s on %s (%s), model %s, serving %s", self.args.id, self.device, type(self.encoder).__name__, self.fingerprint, self.args.valkey.rsplit("@", 1)[-1])
        conn = redis.Redis.from_url(self.args.valkey, socket_timeout=max(30.0, self.args.block_ms / 1000 * 3))
        backoff = 0.1
        while not self.stop.is_set():
            try:
                self.serve_one(conn)
                backoff = 0.1
            except (redis.ConnectionError, redis.TimeoutError) as e:
                RECONNECTS.inc()
                log.warning("Valkey unreachable (%s); retrying in %.1f s", e, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            except redis.ResponseError as e:
                # A refusal that will not change by retrying (wrong model, no model on the server).
                log.error("the module refused this sidecar: %s", e)
                if "not the server's model-dir" in str(e):
                    return 2
                self.stop.wait(1.0)
        return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        sidecar = Sidecar(args, stop)
    except RuntimeError as e:
        log.error("%s", e)
        return 2
    if args.metrics_port:
        start_http_server(args.metrics_port)
    return sidecar.run()


if __name__ == "__main__":
    sys.exit(main())
