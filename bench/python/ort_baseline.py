"""onnxruntime baseline for the classify benchmark: the same ONNX file and tokenizer.json as the
module, the same texts and the same truncation, run the ways a Python enricher would run it.

    python3 bench/python/ort_baseline.py --model-dir model/out/real --texts FILE --max-tokens 128

FILE holds one JSON string per line. Prints one JSON object: {"configs": {name: {...}}} with
articles/s and per-call latency percentiles for each configuration, and with `--topics T
--labels L` (T: JSON {slug: description}; L: one slug per line, in FILE's order) the zero-shot
accuracy the module's base scorer would get from these embeddings (a topic's vector is the
normalised mean of its description's sentences, as in scorer.rs; the highest cosine wins):
  b1-intra2      one session, 2 intra-op threads, one text per call (arrival order)
  b16-intra2     one session, 2 intra-op threads, 16 texts per call padded to the longest
  b1-2sessions   two sessions with 1 intra-op thread each, one per Python thread, one text per call
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "model"))
from eval_static import facets  # noqa: E402  the module's sentence split, shared with the static tier's evaluation
from util import BYTES_PER_TOKEN, lead  # noqa: E402  the module's cut before tokenising (lead.rs)


def tokenize(tok: Tokenizer, texts: list[str], max_tokens: int) -> list[list[int]]:
    tok.no_padding()
    tok.no_truncation()
    out = []
    for enc in tok.encode_batch([lead(t, max_tokens * BYTES_PER_TOKEN) for t in texts]):
        ids = list(enc.ids)
        if len(ids) > max_tokens:
            last = ids[-1] if enc.special_tokens_mask[-1] == 1 else None
            ids = ids[:max_tokens]
            if last is not None:
                ids[-1] = last
        out.append(ids)
    return out


def feeds(batch: list[list[int]], names: list[str]) -> dict[str, np.ndarray]:
    s = max(len(x) for x in batch)
    ids = np.zeros((len(batch), s), dtype=np.int64)
    mask = np.zeros((len(batch), s), dtype=np.int64)
    for r, x in enumerate(batch):
        ids[r, : len(x)] = x
        mask[r, : len(x)] = 1
    all_inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return {n: all_inputs[n] for n in names}


def session(path: str, intra: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = intra
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def run_sequential(sess: ort.InferenceSession, ids: list[list[int]], batch: int, lat: list[float]) -> None:
    names = [i.name for i in sess.get_inputs()]
    for start in range(0, len(ids), batch):
        t0 = time.perf_counter()
        sess.run(None, feeds(ids[start : start + batch], names))
        lat.append(time.perf_counter() - t0)


def embed(sess: ort.InferenceSession, ids: list[list[int]], batch: int = 16) -> np.ndarray:
    names = [i.name for i in sess.get_inputs()]
    out = []
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        f = feeds(chunk, names)
        v = sess.run(None, f)[0]
        if v.ndim == 3:  # token states: mean over the attention mask
            m = f["attention_mask"][:, :, None] if "attention_mask" in f else np.ones(v.shape[:2] + (1,))
            v = (v * m).sum(axis=1)
        out.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    return np.concatenate(out)


def zero_shot_accuracy(sess, tok, texts_ids, topics: dict[str, str], labels: list[str], max_tokens: int) -> float:
    slugs = list(topics)
    vectors = []
    for slug in slugs:
        v = embed(sess, tokenize(tok, facets(topics[slug]), max_tokens)).mean(axis=0)
        vectors.append(v / np.linalg.norm(v))
    predicted = (embed(sess, texts_ids) @ np.stack(vectors).T).argmax(axis=1)
    return 100.0 * sum(slugs[p] == l for p, l in zip(predicted, labels)) / max(1, len(labels))


def measure(name: str, fn, n: int, lat: list[float]) -> dict:
    t0 = time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    lat_ms = sorted(x * 1000 for x in lat)
    pct = lambda p: lat_ms[min(len(lat_ms) - 1, int(p / 100 * len(lat_ms)))]
    return {"articles_per_s": n / wall, "wall_s": wall, "call_p50_ms": pct(50), "call_p99_ms": pct(99)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--texts", required=True)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--only", default="")
    ap.add_argument("--topics", default="")
    ap.add_argument("--labels", default="")
    args = ap.parse_args()
    with open(args.texts, encoding="utf-8") as f:
        texts = [json.loads(line) for line in f if line.strip()]
    tok = Tokenizer.from_file(f"{args.model_dir}/tokenizer.json")
    ids = tokenize(tok, texts, args.max_tokens)
    path = f"{args.model_dir}/model.onnx"
    results = {}
    wanted = [c for c in args.only.split(",") if c]

    def want(name: str) -> bool:
        return not wanted or name in wanted

    for batch in (1, 16):
        name = f"b{batch}-intra2"
        if want(name):
            sess = session(path, 2)
            run_sequential(sess, ids[:32], batch, [])  # warm-up
            lat: list[float] = []
            results[name] = measure(name, lambda: run_sequential(sess, ids, batch, lat), len(ids), lat)

    if want("b1-2sessions"):
        sessions = [session(path, 1), session(path, 1)]
        for s in sessions:
            run_sequential(s, ids[:16], 1, [])
        lats: list[list[float]] = [[], []]

        def two() -> None:
            threads = [threading.Thread(target=run_sequential, args=(sessions[k], ids[k::2], 1, lats[k])) for k in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        lat_all: list[float] = []

        def two_then_merge() -> None:
            two()
            lat_all.extend(lats[0] + lats[1])

        results["b1-2sessions"] = measure("b1-2sessions", two_then_merge, len(ids), lat_all)

    tokens = sum(len(x) for x in ids)
    report = {"onnxruntime": ort.__version__, "texts": len(ids), "mean_tokens": tokens / len(ids), "configs": results}
    if args.topics and args.labels:
        with open(args.topics, encoding="utf-8") as f:
            topics = json.load(f)
        with open(args.labels, encoding="utf-8") as f:
            labels = [line.strip() for line in f if line.strip()]
        report["zero_shot_accuracy"] = zero_shot_accuracy(session(path, 2), tok, ids, topics, labels, args.max_tokens)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
