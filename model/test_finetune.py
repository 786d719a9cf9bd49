"""Tests for model/finetune.py on the tiny model:  python -m pytest model/test_finetune.py -q

Fine-tuning runs for real (PyTorch on the CPU, a few seconds); the topics come from a JSON file
and, end to end, from a real valkey-server with the module, which then loads the tuned folder.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import finetune  # noqa: E402
import make_tiny  # noqa: E402
from util import batch_encode, ort_embed, ort_session  # noqa: E402

MODULE = os.path.join(REPO, "target", "release", "libagentic.so")

TOPICS = [
    {"slug": "sport", "description": "Sport. The team won the game. The player and the league.",
     "examples": ["the team won the game", "the player lost the season", "the league game was won",
                  "the team lost again this season", "a player won the league", "sports team win"]},
    {"slug": "money", "description": "Business. The market and the company. Stock and oil prices.",
     "examples": ["stock market price fell", "the company bank said oil price", "oil price and stock market",
                  "the bank report on the market", "company stock price", "business market bank"]},
    {"slug": "state", "description": "Government. The election and the court. Police and city.",
     "examples": ["the government election court", "police said the city court", "the election of the government",
                  "the court and the police", "city government report", "country election police"]},
]


def missing(reason: str) -> None:
    """Skips, or fails under CI=true, where make test installs what these tests need."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: make test should have provided it)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    """A Hugging Face style folder of the tiny model: model.safetensors, config.json, tokenizer.json."""
    try:
        import torch  # noqa: F401
        from safetensors.numpy import save_file
    except ImportError as e:
        missing(f"{e.name} is not installed: pip install -r model/requirements.txt -r model/requirements-finetune.txt")

    out = tmp_path_factory.mktemp("tiny_hf")
    make_tiny.write_tiny(str(out))
    cfg = make_tiny.tiny_config(len(make_tiny.tiny_vocab()))
    save_file(make_tiny.tiny_weights(cfg), str(out / "model.safetensors"))
    return out


def run_finetune(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, os.path.join(HERE, "finetune.py"), *args], capture_output=True, text=True, timeout=600)


def embed(model_dir, texts):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    return ort_embed(ort_session(os.path.join(model_dir, "model.onnx")), batch_encode(tok, texts))


def test_the_torch_encoder_computes_what_the_exported_graph_computes(tiny_base):
    import torch
    from tokenizers import Tokenizer

    from bert_onnx import load_safetensors_dir

    weights, cfg = load_safetensors_dir(str(tiny_base))
    enc = finetune.make_encoder(weights, cfg)
    tok = Tokenizer.from_file(str(tiny_base / "tokenizer.json"))
    texts = [make_tiny.SENTENCES[1], "the team won", make_tiny.SENTENCES[4]]
    with torch.no_grad():
        ours = enc(*finetune.batch_tensors(tok, texts)).numpy()
    np.testing.assert_allclose(ours, embed(str(tiny_base), texts), atol=1e-5)


def test_fine_tuning_moves_the_examples_towards_their_topics(tiny_base, tmp_path):
    topics = tmp_path / "topics.json"
    topics.write_text(json.dumps(TOPICS))
    out = tmp_path / "tuned"
    r = run_finetune("--topics", str(topics), "--base", str(tiny_base), "--out", str(out), "--epochs", "12", "--lr", "3e-3")
    assert r.returncode == 0, r.stdout + r.stderr
    meta = json.loads((out / "finetune.json").read_text())
    assert meta["topics"] == ["sport", "money", "state"] and meta["examples"] == 18 and meta["epochs"] == 12
    first, last = meta["history"][0], meta["history"][-1]
    assert last["loss"] < 0.5 * first["loss"], meta["history"]
    assert last["examples_right"] >= 0.8 > first["examples_right"], meta["history"]
    for name in ("model.onnx", "tokenizer.json", "config.json", "model.safetensors", "static.bin", "static.json"):
        assert (out / name).is_file(), name
    check = subprocess.run([sys.executable, os.path.join(HERE, "static_tier.py"), "--model-dir", str(out), "--check-only",
                            "--min-correlation", "0.0"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    # Examples of one topic are closer together after tuning than before, in the exported graph.
    texts = [e for t in TOPICS for e in t["examples"]]
    labels = np.repeat(np.arange(len(TOPICS)), [len(t["examples"]) for t in TOPICS])

    def separation(vecs):
        sims = vecs @ vecs.T
        same = labels[:, None] == labels[None, :]
        np.fill_diagonal(same, False)
        other = labels[:, None] != labels[None, :]
        return sims[same].mean() - sims[other].mean()

    before, after = separation(embed(str(tiny_base), texts)), separation(embed(str(out), texts))
    assert after > before + 0.05, (before, after)


def test_topics_without_examples_are_refused_and_nothing_is_written(tiny_base, tmp_path):
    topics = tmp_path / "topics.json"
    topics.write_text(json.dumps([{k: v for k, v in t.items() if k != "examples"} for t in TOPICS]))
    out = tmp_path / "tuned"
    r = run_finetune("--topics", str(topics), "--base", str(tiny_base), "--out", str(out))
    assert r.returncode != 0 and "no topic has examples" in r.stderr, r.stderr
    assert not out.exists()
    topics.write_text(json.dumps([TOPICS[0]]))
    r = run_finetune("--topics", str(topics), "--base", str(tiny_base), "--out", str(out))
    assert r.returncode != 0 and "at least two topics" in r.stderr, r.stderr
    assert not out.exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port: int, *args: str):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        return finetune._resp_call(sock, sock.makefile("rb"), *args)


def info_field(port: int, section: str, field: str) -> str | None:
    for line in call(port, "INFO", section).splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1]
    return None


def wait_for(what: str, check, seconds: float = 60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            got = check()
            if got:
                return got
        except (OSError, RuntimeError):
            pass
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def test_the_servers_topics_train_a_model_the_server_then_loads(tiny_base, tmp_path):
    server = os.environ.get("VALKEY_SERVER") or shutil.which("valkey-server")
    if server is None or not os.path.isfile(MODULE):
        missing("valkey-server or target/release/libagentic.so is missing (make build)")
    tiny = os.path.join(HERE, "out", "tiny")
    if not os.path.isfile(os.path.join(tiny, "model.onnx")):
        missing("model/out/tiny is missing (make tiny-model)")
    port = free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path), "--loadmodule", MODULE, "model-dir", tiny],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for("the server", lambda: call(port, "PING") == "PONG")
        wait_for("the tiny model", lambda: info_field(port, "agentic_classify", "agentic_model_status") == "ready")
        base_fingerprint = info_field(port, "agentic_classify", "agentic_model_fingerprint")
        for t in TOPICS:
            assert call(port, "AGENT.TOPIC.SET", t["slug"], t["description"], "EXAMPLES", *t["examples"][:4]) == "OK"
        defaults = [row[1] for row in call(port, "AGENT.TOPIC.LIST") if row[1] not in {t["slug"] for t in TOPICS}]
        assert len(defaults) == 10 and call(port, "AGENT.TOPIC.DEL", *defaults) == 10
        out = tmp_path / "tuned"
        r = run_finetune("--valkey", f"127.0.0.1:{port}", "--base", str(tiny_base), "--out", str(out), "--epochs", "3",
                         "--lr", "3e-3", "--static", "copy", "--static-from", tiny)
        assert r.returncode == 0, r.stdout + r.stderr
        meta = json.loads((out / "finetune.json").read_text())
        assert sorted(meta["topics"]) == sorted(t["slug"] for t in TOPICS)
        assert meta["examples"] == 12

        assert call(port, "CONFIG", "SET", "agentic.model-dir", str(out)) == "OK"
        wait_for("the tuned model", lambda: info_field(port, "agentic_classify", "agentic_model_status") == "ready"
                 and info_field(port, "agentic_classify", "agentic_model_fingerprint") not in (None, base_fingerprint))
        assert info_field(port, "agentic_classify", "agentic_model_dir") == str(out)
        reply = call(port, "AGENT.CLASSIFY", "the team won the league game this season")
        assert reply[0] in {t["slug"] for t in TOPICS}, reply
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
