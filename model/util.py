"""Helpers shared by export_minilm.py, make_tiny.py and the tests."""

from __future__ import annotations

import numpy as np


def batch_encode(tokenizer, texts: list[str], pad_id: int = 0) -> dict[str, np.ndarray]:
    """Tokenise `texts` (tokenizer has no padding of its own) and right-pad to the longest."""
    encs = tokenizer.encode_batch(texts)
    seq = max(len(e.ids) for e in encs)
    ids = np.full((len(encs), seq), pad_id, dtype=np.int64)
    mask = np.zeros((len(encs), seq), dtype=np.int64)
    types = np.zeros((len(encs), seq), dtype=np.int64)
    for i, e in enumerate(encs):
        n = len(e.ids)
        ids[i, :n] = e.ids
        mask[i, :n] = e.attention_mask
        types[i, :n] = e.type_ids
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def ort_session(path: str, threads: int = 2):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ort_embed(session, feeds: dict[str, np.ndarray]) -> np.ndarray:
    return session.run(["sentence_embedding"], feeds)[0]


def report(res: dict[str, float], tolerance: float, detail: str = "") -> int:
    """Prints a comparison from `compare` and returns the process exit code for `tolerance`."""
    import sys

    diff = max(res["batched"], res["single"])
    print(f"max abs diff vs float64 reference: batched {res['batched']:.3e}, "
          f"single {res['single']:.3e} (min cosine {res['min_cosine']:.7f}{detail})")
    if diff > tolerance:
        print(f"FAIL: {diff:.3e} > {tolerance}", file=sys.stderr)
        return 1
    print("OK")
    return 0


def compare(session, weights, cfg, tokenizer, texts: list[str]) -> dict[str, float]:
    """Max abs difference of the ONNX graph vs the float64 reference.

    `batched`: all texts in one padded batch; `single`: each text alone (no padding).
    """
    import reference

    feeds = batch_encode(tokenizer, texts)
    ref = reference.embed(weights, cfg, **feeds)
    got = ort_embed(session, feeds)
    single = np.concatenate([ort_embed(session, batch_encode(tokenizer, [t])) for t in texts])
    return {
        "batched": float(np.abs(got - ref).max()),
        "single": float(np.abs(single - ref).max()),
        "min_cosine": float(np.min(np.sum(got * ref, axis=1))),
        "max_len": int(feeds["input_ids"].shape[1]),
    }


BYTES_PER_TOKEN = 6  # module/src/classify/lead.rs


def lead(text: str, max_bytes: int) -> str:
    """The module's cut before tokenising (lead.rs): the last sentence end in the second half of
    the byte budget, else the last space, else a character boundary."""
    b = text.encode("utf-8")
    if len(b) <= max_bytes:
        return text
    end = max_bytes
    while end > 0 and (b[end] & 0xC0) == 0x80:
        end -= 1
    window = b[:end]
    for i in range(end - 1, max_bytes // 2 - 1, -1):
        if window[i : i + 1] in (b".", b"!", b"?", b"\n") and (i + 1 == len(window) or window[i + 1 : i + 2].isspace()):
            return b[: i + 1].decode("utf-8", "ignore")
    space = max((window.rfind(c) for c in (b" ", b"\t", b"\n", b"\r")), default=-1)
    if space > 0:
        return window[:space].decode("utf-8", "ignore").rstrip()
    return window.decode("utf-8", "ignore")
