"""Independent float64 numpy forward pass of a BERT sentence encoder.

Written separately from bert_onnx.py as a check on it: plain loops over sequences, layers
and heads, HF weight names used directly ([out, in] linear weights, y = x @ W.T + b).
Padding is handled by dropping padded keys from attention and from the mean (instead of an
additive bias), so the two implementations do not share the masking trick either.

    embed(weights, cfg, input_ids, attention_mask, token_type_ids) -> float64 [batch, hidden]
"""

from __future__ import annotations

import math

import numpy as np

_erf = np.frompyfunc(math.erf, 1, 1)


def _cfg_get(cfg, key: str):
    return cfg[key] if isinstance(cfg, dict) else getattr(cfg, key)


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def encode_one(w: dict[str, np.ndarray], cfg, ids: np.ndarray, types: np.ndarray,
               keep: np.ndarray) -> np.ndarray:
    """Last hidden states [S, H] of one sequence; `keep` marks the keys attention may use."""
    nh = _cfg_get(cfg, "num_attention_heads")
    eps = _cfg_get(cfg, "layer_norm_eps")
    n_layers = _cfg_get(cfg, "num_hidden_layers")

    def lin(x, name):
        return x @ w[name + ".weight"].T + w[name + ".bias"]

    seq = len(ids)
    x = (w["embeddings.word_embeddings.weight"][ids]
         + w["embeddings.position_embeddings.weight"][np.arange(seq)]
         + w["embeddings.token_type_embeddings.weight"][types])
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    hidden = x.shape[1]
    dh = hidden // nh
    for n in range(n_layers):
        p = f"encoder.layer.{n}."
        q = lin(x, p + "attention.self.query")
        k = lin(x, p + "attention.self.key")
        v = lin(x, p + "attention.self.value")
        ctx = np.zeros_like(x)
        for head in range(nh):
            sl = slice(head * dh, (head + 1) * dh)
            kh, vh = k[keep, sl], v[keep, sl]
            att = _softmax((q[:, sl] @ kh.T) / math.sqrt(dh))
            ctx[:, sl] = att @ vh
        a = lin(ctx, p + "attention.output.dense")
        x = _layer_norm(a + x, w[p + "attention.output.LayerNorm.weight"],
                        w[p + "attention.output.LayerNorm.bias"], eps)
        f = lin(_gelu(lin(x, p + "intermediate.dense")), p + "output.dense")
        x = _layer_norm(f + x, w[p + "output.LayerNorm.weight"],
                        w[p + "output.LayerNorm.bias"], eps)
    return x


def embed(weights: dict[str, np.ndarray], cfg, input_ids, attention_mask=None,
          token_type_ids=None) -> np.ndarray:
    """Mean-pooled (over attention_mask), L2-normalised sentence embeddings, float64."""
    input_ids = np.asarray(input_ids, dtype=np.int64)
    if input_ids.ndim == 1:
        input_ids = input_ids[None, :]
    if attention_mask is None:
        attention_mask = np.ones_like(input_ids)
    if token_type_ids is None:
        token_type_ids = np.zeros_like(input_ids)
    attention_mask = np.asarray(attention_mask, dtype=np.int64)
    token_type_ids = np.asarray(token_type_ids, dtype=np.int64)
    w = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items()
         if np.issubdtype(np.asarray(v).dtype, np.floating)}
    out = []
    for ids, mask, types in zip(input_ids, attention_mask, token_type_ids):
        keep = mask.astype(bool)
        hs = encode_one(w, cfg, ids, types, keep)
        pooled = hs[keep].sum(axis=0) / max(int(keep.sum()), 1)
        out.append(pooled / max(np.linalg.norm(pooled), 1e-12))
    return np.stack(out)
