"""Sidecar vs the module's CPU pool on the same texts, with the real model: articles/s of each path
and their top-1 agreement. Starts its own valkey-server (module + model) and sidecar.

    python sidecar/bench_sidecar.py [--model-dir model/out/real] [--texts 1000] [--clients 16]

Texts: the fixed, generated set of sidecar/tests/texts.py (no external data). On a machine with a
GPU the sidecar runs on CUDA (ENRICH_USE_CUDA=auto); on a CPU-only machine both paths share the
same cores, so the ratio says little there (the agreement still holds).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE / "tests"))
from conftest import free_port, wait_for  # noqa: E402
from texts import fixed_texts  # noqa: E402


def classify(port: int, texts: list[str], clients: int) -> tuple[list[str], float]:
    best = [""] * len(texts)

    def ask(k: int):
        c = redis.Redis(port=port, decode_responses=True, protocol=2)
        for i in range(k, len(texts), clients):
            best[i] = c.execute_command("AGENT.CLASSIFY", texts[i], "TIMEOUT", 0)[0]

    threads = [threading.Thread(target=ask, args=(k,)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return best, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default=str(REPO / "model/out/real"))
    ap.add_argument("--module", default=str(REPO / "target/release/libagentic.so"))
    ap.add_argument("--texts", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--batch", type=int, default=64)
    a = ap.parse_args()
    if not os.path.isfile(os.path.join(a.model_dir, "model.onnx")):
        print(f"bench_sidecar: skipped: no model in {a.model_dir} (make model)")
        return 0
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="bench-sidecar-")
    server = subprocess.Popen(["valkey-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir,
                               "--loadmodule", a.module, "model-dir", os.path.abspath(a.model_dir), "sidecar-ttl-ms", "500"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    sidecar = None
    try:
        c = redis.Redis(port=port, decode_responses=True, protocol=2)

        def ready():
            try:
                return c.execute_command("INFO", "agentic_classify").get("agentic_model_status") == "ready"
            except redis.ConnectionError:
                return False

        wait_for(ready, timeout=300, what="the model")
        texts = fixed_texts(a.texts)
        classify(port, texts[:64], a.clients)  # warm-up: topic vectors, plans
        on_cpu, cpu_s = classify(port, texts, a.clients)
        env = {**os.environ, "VALKEY_URL": f"redis://127.0.0.1:{port}", "MODEL_DIR": os.path.abspath(a.model_dir), "METRICS_PORT": "0",
               "ENRICH_BATCH": str(a.batch)}  # fmt: skip
        sidecar = subprocess.Popen([sys.executable, "-m", "agentic_sidecar"], cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait_for(lambda: str(c.execute_command("INFO", "agentic_classify").get("agentic_sidecars_live")) == "1", timeout=300, what="the sidecar")
        device = c.execute_command("INFO", "agentic_classify").get("agentic_sidecar_devices")
        classify(port, texts[:64], a.clients)  # warm-up on the sidecar
        before = dict(zip(*[iter(c.execute_command("AGENT.STATS"))] * 2))
        on_sidecar, side_s = classify(port, texts, a.clients)
        after = dict(zip(*[iter(c.execute_command("AGENT.STATS"))] * 2))
        served = int(after["sidecar_texts"]) - int(before["sidecar_texts"])
        agree = sum(x == y for x, y in zip(on_cpu, on_sidecar)) / len(texts)
        print(f"bench_sidecar: {len(texts)} texts, {a.clients} clients, model {a.model_dir}")
        print(f"  CPU pool:  {len(texts) / cpu_s:8.1f} texts/s")
        print(f"  sidecar ({device}): {len(texts) / side_s:8.1f} texts/s  ({served} of {len(texts)} served by the sidecar)")
        print(f"  ratio sidecar / CPU pool: {cpu_s / side_s:.2f}x")
        print(f"  top-1 agreement: {agree:.4f} ({sum(x != y for x, y in zip(on_cpu, on_sidecar))} differ)")
        return 0
    finally:
        if sidecar:
            sidecar.kill()
            sidecar.wait()
        server.kill()
        server.wait()


if __name__ == "__main__":
    sys.exit(main())
