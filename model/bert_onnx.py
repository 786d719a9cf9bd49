"""Build an ONNX graph (opset 17) of a BERT sentence encoder from numpy weights.

Only the ``onnx`` helper API is used (no torch).  The graph takes

    input_ids       int64 [batch, seq]
    attention_mask  int64 [batch, seq]   (1 = token, 0 = padding)
    token_type_ids  int64 [batch, seq]

and returns

    sentence_embedding  float32 [batch, hidden]

which is the mean of the last hidden states over the attention mask, L2-normalised
(sentence-transformers' ``Pooling(mean)`` + ``Normalize``), computed inside the graph.

Weights use the Hugging Face ``BertModel`` names found in ``model.safetensors``
(``embeddings.word_embeddings.weight``, ``encoder.layer.N.attention.self.query.weight``, ...).
Linear weights are stored as [out, in] there; they are transposed once here.

Op choice is deliberately conservative so that tract-onnx can run the graph unchanged:
Gather, Slice, Shape, Concat, Expand, Unsqueeze, Reshape, Transpose, MatMul, Add, Sub, Mul,
Div, Sqrt, Pow-free LayerNorm (ReduceMean-based), Erf, Softmax, ReduceSum, Max, Cast.
The attention-mask additive bias is computed once (by default expanded to
[batch, heads, seq, seq], which avoids a slow broadcasting Add in tract) and reused by every layer.
The 1/sqrt(head_dim) attention scale is folded into the query weights and bias.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
MASK_BIAS = -10000.0  # additive bias for padded keys (classic BERT); exp() underflows to 0


@dataclass
class BertConfig:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_hf(cls, cfg: dict) -> "BertConfig":
        """From a Hugging Face ``config.json`` dict (only BERT/GELU-erf/absolute positions)."""
        act = cfg.get("hidden_act", "gelu")
        if act != "gelu":
            raise ValueError(f"unsupported hidden_act {act!r} (only erf GELU)")
        pet = cfg.get("position_embedding_type", "absolute")
        if pet != "absolute":
            raise ValueError(f"unsupported position_embedding_type {pet!r}")
        return cls(
            vocab_size=cfg["vocab_size"],
            hidden_size=cfg["hidden_size"],
            num_hidden_layers=cfg["num_hidden_layers"],
            num_attention_heads=cfg["num_attention_heads"],
            intermediate_size=cfg["intermediate_size"],
            max_position_embeddings=cfg["max_position_embeddings"],
            type_vocab_size=cfg.get("type_vocab_size", 2),
            layer_norm_eps=cfg.get("layer_norm_eps", 1e-12),
        )

    def validate(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be a multiple of num_attention_heads")


def expected_weight_shapes(cfg: BertConfig) -> dict[str, tuple[int, ...]]:
    """Every weight the graph needs, with its HF name and shape."""
    h, i = cfg.hidden_size, cfg.intermediate_size
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (cfg.vocab_size, h),
        "embeddings.position_embeddings.weight": (cfg.max_position_embeddings, h),
        "embeddings.token_type_embeddings.weight": (cfg.type_vocab_size, h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    for n in range(cfg.num_hidden_layers):
        p = f"encoder.layer.{n}."
        for part in ("query", "key", "value"):
            shapes[p + f"attention.self.{part}.weight"] = (h, h)
            shapes[p + f"attention.self.{part}.bias"] = (h,)
        shapes[p + "attention.output.dense.weight"] = (h, h)
        shapes[p + "attention.output.dense.bias"] = (h,)
        shapes[p + "attention.output.LayerNorm.weight"] = (h,)
        shapes[p + "attention.output.LayerNorm.bias"] = (h,)
        shapes[p + "intermediate.dense.weight"] = (i, h)
        shapes[p + "intermediate.dense.bias"] = (i,)
        shapes[p + "output.dense.weight"] = (h, i)
        shapes[p + "output.dense.bias"] = (h,)
        shapes[p + "output.LayerNorm.weight"] = (h,)
        shapes[p + "output.LayerNorm.bias"] = (h,)
    return shapes


def check_weights(weights: dict[str, np.ndarray], cfg: BertConfig) -> None:
    for name, shape in expected_weight_shapes(cfg).items():
        if name not in weights:
            raise KeyError(f"missing weight {name}")
        if tuple(weights[name].shape) != shape:
            raise ValueError(f"{name}: shape {weights[name].shape}, expected {shape}")


class _GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def fresh(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def init(self, name: str, arr: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name=name))
        return name

    def const_f(self, name: str, value: float) -> str:
        return self.init(name, np.array(value, dtype=np.float32))

    def const_i64(self, name: str, values) -> str:
        return self.init(name, np.array(values, dtype=np.int64))

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs) -> str:
        out = self.fresh(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def build_bert_onnx(
    weights: dict[str, np.ndarray],
    cfg: BertConfig,
    *,
    mask_layout: str = "full",
    fused_layernorm: bool = False,
    graph_name: str = "bert_sentence_encoder",
    metadata: dict[str, str] | None = None,
) -> onnx.ModelProto:
    """Return an ONNX ModelProto for the encoder + mean pooling + L2 normalisation.

    mask_layout: "full" expands the additive mask bias to [B, heads, S, S] once;
                 "broadcast" keeps it [B, 1, 1, S].
    fused_layernorm: use the opset-17 LayerNormalization op instead of the decomposed form.
    """
    cfg.validate()
    check_weights(weights, cfg)
    if mask_layout not in ("full", "broadcast"):
        raise ValueError("mask_layout must be 'full' or 'broadcast'")

    g = _GraphBuilder()
    h, nh, dh = cfg.hidden_size, cfg.num_attention_heads, cfg.head_dim
    f32 = lambda name: np.asarray(weights[name], dtype=np.float32)  # noqa: E731

    # ---- shared constants -------------------------------------------------------------
    eps = g.const_f("ln_eps", cfg.layer_norm_eps)
    one = g.const_f("one_f", 1.0)
    half = g.const_f("half_f", 0.5)
    inv_sqrt2 = g.const_f("inv_sqrt2", 1.0 / math.sqrt(2.0))
    axis1 = g.const_i64("axes_1", [1])
    zero_1d = g.const_i64("zero_1d", [0])
    heads_1d = g.const_i64("heads_1d", [nh])
    split_heads = g.const_i64("shape_split_heads", [0, 0, nh, dh])
    merge_heads = g.const_i64("shape_merge_heads", [0, 0, h])

    def layer_norm(x: str, prefix: str) -> str:
        gamma = g.init(prefix + ".weight", f32(prefix + ".weight"))
        beta = g.init(prefix + ".bias", f32(prefix + ".bias"))
        if fused_layernorm:
            return g.op("LayerNormalization", [x, gamma, beta], "ln",
                        axis=-1, epsilon=cfg.layer_norm_eps)
        mean = g.op("ReduceMean", [x], "ln_mean", axes=[-1], keepdims=1)
        xc = g.op("Sub", [x, mean], "ln_centered")
        var = g.op("ReduceMean", [g.op("Mul", [xc, xc], "ln_sq")], "ln_var", axes=[-1], keepdims=1)
        std = g.op("Sqrt", [g.op("Add", [var, eps], "ln_var_eps")], "ln_std")
        y = g.op("Div", [xc, std], "ln_norm")
        return g.op("Add", [g.op("Mul", [y, gamma], "ln_scaled"), beta], "ln_out")

    def linear(x: str, prefix: str, scale: float = 1.0) -> str:
        w = f32(prefix + ".weight").T * np.float32(scale)  # [in, out]
        b = f32(prefix + ".bias") * np.float32(scale)
        wn = g.init(prefix + ".weight_t", w.astype(np.float32))
        bn = g.init(prefix + ".bias" + ("_scaled" if scale != 1.0 else ""), b.astype(np.float32))
        return g.op("Add", [g.op("MatMul", [x, wn], "mm"), bn], "linear")

    # ---- embeddings -------------------------------------------------------------------
    shape_ids = g.op("Shape", ["input_ids"], "ids_shape")  # [2] = (B, S)
    batch_1d = g.op("Slice", [shape_ids, zero_1d, axis1], "batch_dim")  # [1]
    two_1d = g.const_i64("two_1d", [2])
    seq_1d = g.op("Slice", [shape_ids, axis1, two_1d], "seq_dim")  # [1]

    word_emb = g.init("embeddings.word_embeddings.weight", f32("embeddings.word_embeddings.weight"))
    pos_emb = g.init("embeddings.position_embeddings.weight",
                     f32("embeddings.position_embeddings.weight"))
    type_emb = g.init("embeddings.token_type_embeddings.weight",
                      f32("embeddings.token_type_embeddings.weight"))

    words = g.op("Gather", [word_emb, "input_ids"], "word_embeds", axis=0)  # [B,S,H]
    positions = g.op("Slice", [pos_emb, zero_1d, seq_1d, zero_1d], "pos_embeds")  # [S,H]
    types = g.op("Gather", [type_emb, "token_type_ids"], "type_embeds", axis=0)  # [B,S,H]
    x = g.op("Add", [g.op("Add", [words, positions], "emb_wp"), types], "emb_sum")
    x = layer_norm(x, "embeddings.LayerNorm")

    # ---- attention mask bias, computed once -------------------------------------------
    mask_f = g.op("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)  # [B,S]
    neg = g.op("Mul", [g.op("Sub", [one, mask_f], "mask_inv"), g.const_f("mask_bias", MASK_BIAS)],
               "mask_neg")
    bias = g.op("Unsqueeze", [neg, g.const_i64("axes_1_2", [1, 2])], "mask_b11s")  # [B,1,1,S]
    if mask_layout == "full":
        full_shape = g.op("Concat", [batch_1d, heads_1d, seq_1d, seq_1d], "mask_shape", axis=0)
        bias = g.op("Expand", [bias, full_shape], "mask_bhss")  # [B,heads,S,S]

    # ---- encoder layers ---------------------------------------------------------------
    scale = 1.0 / math.sqrt(dh)
    for n in range(cfg.num_hidden_layers):
        p = f"encoder.layer.{n}."
        q = linear(x, p + "attention.self.query", scale)
        k = linear(x, p + "attention.self.key")
        v = linear(x, p + "attention.self.value")
        q = g.op("Transpose", [g.op("Reshape", [q, split_heads], "q_split")], "q_t", perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [k, split_heads], "k_split")], "k_t", perm=[0, 2, 3, 1])
        v = g.op("Transpose", [g.op("Reshape", [v, split_heads], "v_split")], "v_t", perm=[0, 2, 1, 3])
        scores = g.op("Add", [g.op("MatMul", [q, k], "scores_raw"), bias], "scores")  # [B,nh,S,S]
        probs = g.op("Softmax", [scores], "probs", axis=-1)
        ctx = g.op("MatMul", [probs, v], "ctx")  # [B,nh,S,dh]
        ctx = g.op("Transpose", [ctx], "ctx_t", perm=[0, 2, 1, 3])
        ctx = g.op("Reshape", [ctx, merge_heads], "ctx_merged")  # [B,S,H]
        attn = linear(ctx, p + "attention.output.dense")
        x = layer_norm(g.op("Add", [attn, x], "attn_residual"), p + "attention.output.LayerNorm")

        inter = linear(x, p + "intermediate.dense")
        erf = g.op("Erf", [g.op("Mul", [inter, inv_sqrt2], "gelu_scaled")], "gelu_erf")
        gelu = g.op("Mul", [g.op("Mul", [inter, half], "gelu_half"),
                            g.op("Add", [erf, one], "gelu_erf1")], "gelu")
        out = linear(gelu, p + "output.dense")
        x = layer_norm(g.op("Add", [out, x], "ffn_residual"), p + "output.LayerNorm")

    # ---- mean pooling over the mask + L2 normalisation ---------------------------------
    mask_e = g.op("Unsqueeze", [mask_f, g.const_i64("axes_2", [2])], "mask_bs1")  # [B,S,1]
    summed = g.op("ReduceSum", [g.op("Mul", [x, mask_e], "masked_hidden"), axis1], "pool_sum",
                  keepdims=0)  # [B,H]
    count = g.op("ReduceSum", [mask_e, axis1], "pool_count", keepdims=0)  # [B,1]
    count = g.op("Max", [count, g.const_f("count_min", 1e-9)], "pool_count_clamped")
    mean = g.op("Div", [summed, count], "pool_mean")
    sq = g.op("ReduceSum", [g.op("Mul", [mean, mean], "mean_sq"), g.const_i64("axes_m1", [-1])],
              "norm_sq", keepdims=1)
    norm = g.op("Max", [g.op("Sqrt", [sq], "norm"), g.const_f("norm_min", 1e-12)], "norm_clamped")
    g.nodes.append(helper.make_node("Div", [mean, norm], ["sentence_embedding"], name="l2_normalize"))

    inputs = [
        helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "seq"])
        for name in ("input_ids", "attention_mask", "token_type_ids")
    ]
    outputs = [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", h])]
    graph = helper.make_graph(g.nodes, graph_name, inputs, outputs, initializer=g.inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="valkey-agentic/model/bert_onnx.py",
        doc_string="BERT encoder + masked mean pooling + L2 normalisation",
    )
    model.ir_version = 8  # opset 17 needs IR >= 8; keep it low for older runtimes (tract, ort)
    meta = {
        "config": json.dumps(asdict(cfg)),
        "pooling": "mean",
        "normalize": "l2",
        "embedding_dim": str(h),
        "mask_layout": mask_layout,
    }
    meta.update(metadata or {})
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model, full_check=True)
    return model


def load_safetensors_dir(model_dir: str) -> tuple[dict[str, np.ndarray], BertConfig]:
    """Weights + config from a HF model folder (model.safetensors + config.json)."""
    import os

    from safetensors.numpy import load_file

    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = BertConfig.from_hf(json.load(f))
    weights = load_file(os.path.join(model_dir, "model.safetensors"))
    # Some checkpoints prefix names with "bert."; strip it.
    weights = {k[5:] if k.startswith("bert.") else k: v for k, v in weights.items()}
    return weights, cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", help="folder with model.safetensors + config.json")
    ap.add_argument("out", help="output .onnx path")
    ap.add_argument("--mask-layout", choices=["full", "broadcast"], default="full")
    ap.add_argument("--fused-layernorm", action="store_true")
    a = ap.parse_args()
    weights, cfg = load_safetensors_dir(a.model_dir)
    model = build_bert_onnx(weights, cfg, mask_layout=a.mask_layout,
                            fused_layernorm=a.fused_layernorm)
    onnx.save(model, a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
