"""The model directory the module also loads (`model-dir`): model.onnx + tokenizer.json, and the
fingerprint the module compares before it accepts a sidecar's vectors."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import onnx
import xxhash
from onnx import numpy_helper


def fingerprint(model_dir: str) -> str:
    """xxh3-64 of the graph XOR the tokenizer's rotated left by one, as 16 hex digits (the
    module's `model_fingerprint`)."""
    with open(os.path.join(model_dir, "model.onnx"), "rb") as f:
        graph = xxhash.xxh3_64_intdigest(f.read())
    with open(os.path.join(model_dir, "tokenizer.json"), "rb") as f:
        tok = xxhash.xxh3_64_intdigest(f.read())
    rotated = ((tok << 1) | (tok >> 63)) & 0xFFFFFFFFFFFFFFFF
    return f"{graph ^ rotated:016x}"


@dataclass
class BertWeights:
    """The encoder's weights as the module's exporter (model/bert_onnx.py) names them: linear
    weights stored [in, out] (`*.weight_t`), the query's 1/sqrt(head_dim) scale already folded in."""

    tensors: dict[str, np.ndarray]
    hidden: int
    heads: int
    layers: int
    eps: float
    mask_bias: float = -10000.0

    @classmethod
    def from_onnx(cls, path: str) -> "BertWeights":
        model = onnx.load(path)
        meta = {p.key: p.value for p in model.metadata_props}
        if "config" not in meta:
            raise ValueError(f"{path} has no 'config' metadata: it was not written by model/bert_onnx.py")
        cfg = json.loads(meta["config"])
        tensors = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        return cls(tensors, int(cfg["hidden_size"]), int(cfg["num_attention_heads"]), int(cfg["num_hidden_layers"]), float(cfg["layer_norm_eps"]))

    def linear(self, prefix: str) -> tuple[np.ndarray, np.ndarray]:
        bias = self.tensors.get(prefix + ".bias_scaled")
        if bias is None:
            bias = self.tensors[prefix + ".bias"]
        return self.tensors[prefix + ".weight_t"], bias
