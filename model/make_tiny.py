"""Write a tiny BERT sentence encoder (same inputs/outputs as the real export) for tests.

    python model/make_tiny.py --out model/out/tiny

Writes DIR/model.onnx (hidden 32, 2 layers, 4 heads, intermediate 64, deterministic weights
from a fixed numpy seed), DIR/tokenizer.json (a small WordPiece vocabulary built here, BERT-style
normaliser / pre-tokeniser / [CLS] ... [SEP] post-processor, no padding, truncation at 128),
DIR/config.json, then checks the ONNX graph (onnxruntime) against reference.py and exits
non-zero if the max abs difference exceeds 1e-5.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bert_onnx import BertConfig, build_bert_onnx, expected_weight_shapes  # noqa: E402
from util import report  # noqa: E402

SEED = 20240611
TOLERANCE = 1e-5
MAX_LEN = 128

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PUNCT = list(".,!?;:'\"()-/&$%")
DIGITS = list("0123456789")
LETTERS = [chr(c) for c in range(ord("a"), ord("z") + 1)]
WORDS = """
the of and to a in is it you that he was for on are with as i his they be at one have this
from or had by not word but what some we can out other were all there when up use your how
said an each she which do their time if will way about many then them write would like so
these her long make thing see him two has look more day could go come did number sound no
most people my over know water than call first who may down side been now find any new work
part take get place made live where after back little only round man year came show every
good me give our under name very through just form sentence great think say help low line
differ turn cause much mean before move right boy old too same tell does set three want air
well also play small end put home read hand port large spell add even land here must big high
such follow act why ask men change went light kind off need house picture try us again animal
point mother world near build self earth father news sport sports business science technology
market stock game team win won lost price company government election world market city
country police court bank oil music film health school report game player season league
""".split()
SUFFIXES = ["##s", "##es", "##ed", "##ing", "##er", "##ers", "##est", "##ly", "##tion",
            "##ment", "##ness", "##able", "##al", "##y", "##ies"]

SENTENCES = [
    "hello world",
    "The quick brown fox jumps over the lazy dog.",
    "Stocks rallied as the market closed higher on Tuesday.",
    "a",
    "The team won the league after a long season, said the old player.",
    "Government and police report: the court will change the election law!",
    "zyxw qqq unknownish wordpieces",
    "Science and technology news from every country in the world, read by many people "
    "who like to know more about health, music and film.",
]


def tiny_config(vocab_size: int) -> BertConfig:
    return BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2,
                      num_attention_heads=4, intermediate_size=64,
                      max_position_embeddings=MAX_LEN, type_vocab_size=2, layer_norm_eps=1e-12)


def tiny_vocab() -> list[str]:
    vocab: list[str] = []
    for tok in SPECIALS + PUNCT + DIGITS + LETTERS + ["##" + c for c in LETTERS + DIGITS] \
            + WORDS + SUFFIXES:
        if tok not in vocab:
            vocab.append(tok)
    return vocab


def tiny_weights(cfg: BertConfig, seed: int = SEED) -> dict[str, np.ndarray]:
    """Deterministic weights: LayerNorm gamma ~ 1, linear weights ~ N(0, 1/fan_in)."""
    rng = np.random.default_rng(seed)
    weights: dict[str, np.ndarray] = {}
    for name, shape in expected_weight_shapes(cfg).items():  # dict order is deterministic
        if name.endswith("LayerNorm.weight"):
            arr = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith(".bias"):
            arr = 0.1 * rng.standard_normal(shape)
        elif name.startswith("embeddings."):
            arr = 0.5 * rng.standard_normal(shape)
        else:  # linear [out, in]
            arr = rng.standard_normal(shape) / np.sqrt(shape[1]) * 1.5
        weights[name] = arr.astype(np.float32)
    return weights


def build_tokenizer(vocab: list[str]):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    ids = {t: i for i, t in enumerate(vocab)}
    tok = Tokenizer(models.WordPiece(vocab=ids, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tok.add_special_tokens(SPECIALS)
    tok.no_padding()
    tok.enable_truncation(max_length=MAX_LEN)
    return tok


def write_tiny(out_dir: str) -> dict[str, str]:
    import onnx

    os.makedirs(out_dir, exist_ok=True)
    vocab = tiny_vocab()
    cfg = tiny_config(len(vocab))
    model = build_bert_onnx(tiny_weights(cfg), cfg, graph_name="tiny_bert_sentence_encoder",
                            metadata={"name": "tiny-random-bert", "seed": str(SEED),
                                      "max_length": str(MAX_LEN)})
    paths = {
        "model": os.path.join(out_dir, "model.onnx"),
        "tokenizer": os.path.join(out_dir, "tokenizer.json"),
        "config": os.path.join(out_dir, "config.json"),
    }
    onnx.save(model, paths["model"])
    build_tokenizer(vocab).save(paths["tokenizer"])
    hf_cfg = {
        "architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
        "hidden_size": cfg.hidden_size, "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "intermediate_size": cfg.intermediate_size,
        "max_position_embeddings": cfg.max_position_embeddings,
        "type_vocab_size": cfg.type_vocab_size, "vocab_size": cfg.vocab_size,
        "layer_norm_eps": cfg.layer_norm_eps, "pad_token_id": 0,
        "position_embedding_type": "absolute", "seed": SEED,
    }
    with open(paths["config"], "w") as f:
        json.dump(hf_cfg, f, indent=2)
    return paths


def check_tiny(out_dir: str, texts: list[str] | None = None) -> dict[str, float]:
    from tokenizers import Tokenizer

    from util import compare, ort_session

    vocab = tiny_vocab()
    cfg = tiny_config(len(vocab))
    tok = Tokenizer.from_file(os.path.join(out_dir, "tokenizer.json"))
    sess = ort_session(os.path.join(out_dir, "model.onnx"))
    return compare(sess, tiny_weights(cfg), cfg, tok, texts or SENTENCES)


def main() -> int:
    ap = argparse.ArgumentParser(description="write + check the tiny test model")
    ap.add_argument("--out", required=True, help="output folder")
    a = ap.parse_args()
    t0 = time.perf_counter()
    paths = write_tiny(a.out)
    t1 = time.perf_counter()
    for p in paths.values():
        print(f"wrote {p} ({os.path.getsize(p):,} bytes)")
    res = check_tiny(a.out)
    t2 = time.perf_counter()
    print(f"build {t1 - t0:.2f}s, check {t2 - t1:.2f}s")
    return report(res, TOLERANCE, f", {len(SENTENCES)} sentences, up to {res['max_len']} tokens")


if __name__ == "__main__":
    sys.exit(main())
