"""The sidecar protocol against a real server: a live sidecar serves AGENT.CLASSIFY (and the
pipeline), agrees with the CPU path, and every failure - slow, killed mid-batch, erroring, wrong
model, bad results - ends with the CPU pool answering, counted."""

from __future__ import annotations

import math
import struct
import threading

import pytest
import redis

from agentic_sidecar.model_files import fingerprint
from conftest import TINY_MODEL, wait_for
from texts import fixed_texts


def classify_all(server, texts: list[str], connections: int = 8) -> list[str]:
    """Best topics of `texts`, asked over several connections: a blocked client runs one command
    at a time, so concurrency needs connections (the module then batches what is queued)."""
    best: list[str] = [""] * len(texts)

    def ask(k: int):
        c = server.client()
        for i in range(k, len(texts), connections):
            best[i] = c.execute_command("AGENT.CLASSIFY", texts[i])[0]

    threads = [threading.Thread(target=ask, args=(k,)) for k in range(min(connections, len(texts)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return best


def live(server, n: int = 1):
    wait_for(lambda: server.info("sidecars_live") == str(n), what=f"{n} live sidecar(s)")


def test_a_live_sidecar_serves_classify_and_agrees_with_the_cpu_pool(start_server, start_sidecar):
    server = start_server("sidecar-ttl-ms", "500", "classify-threads", "1")
    sidecar = start_sidecar(server)
    live(server)
    assert server.info("sidecar_devices") == "cpu:1"
    listed = server.client().execute_command("AGENT.SIDECAR.LIST")
    assert listed[0][listed[0].index("device") + 1] == "cpu" and listed[0][listed[0].index("live") + 1] == 1

    texts = fixed_texts(1000)
    on_sidecar = classify_all(server, texts)
    assert server.stat("sidecar_texts") == len(texts), "every text went to the sidecar"
    assert server.stat("sidecar_fallbacks") == 0
    sidecar.kill()
    wait_for(lambda: server.info("sidecars_live") == "0", what="the sidecar to stop counting as live")
    cpu_texts_before = server.stat("classify_texts")
    on_cpu = classify_all(server, texts)
    assert server.stat("sidecar_texts") == len(texts), "nothing more went to the gone sidecar"
    assert server.stat("classify_texts") - cpu_texts_before == len(texts)
    agreement = sum(a == b for a, b in zip(on_sidecar, on_cpu)) / len(texts)
    print(f"top-1 agreement sidecar vs CPU pool on {len(texts)} texts: {agreement:.4f}")
    assert agreement >= 0.99


def scores_of(server, texts: list[str]) -> list[dict[str, float]]:
    c = server.client()
    out = []
    for t in texts:
        best, pairs, _tier = c.execute_command("AGENT.CLASSIFY", t)
        scores = {pairs[i]: float(pairs[i + 1]) for i in range(0, len(pairs), 2)}
        assert max(scores, key=scores.get) == best
        out.append(scores)
    return out


def test_the_sidecar_path_teaches_the_heads_and_answers_with_them(start_server, start_sidecar):
    """With a sidecar live every text runs on its encoder. In the cascade a share of those texts
    teaches the self-trained heads, as escalated texts do on the CPU; once fitted, the heads score
    the sidecar's vectors too, so a GPU answers as the CPU encoder tier does."""
    server = start_server("sidecar-ttl-ms", "500", "classify-threads", "1", "classify-learn-percent", "0")
    c = server.client()
    c.config_set("agentic.classify-tier", "cascade")
    sidecar = start_sidecar(server)
    live(server)
    probes = [f"{t} (probe)" for t in fixed_texts(40, seed=7)]
    base = scores_of(server, probes)
    assert server.stat("sidecar_texts") == len(probes) and server.stat("classify_learn_samples") == 0

    c.config_set("agentic.classify-learn-percent", "100")
    classify_all(server, fixed_texts(1000))
    assert server.stat("sidecar_texts") == len(probes) + 1000, "every text went to the sidecar"
    assert server.stat("classify_learn_samples") == 1000, "every learnable text taught while the learner was hungry"
    wait_for(lambda: server.stat("classify_head_fits") == 1, timeout=60, what="the heads fitted from the sidecar's texts")
    c.config_set("agentic.classify-learn-percent", "0")
    on_sidecar = scores_of(server, probes)
    assert server.stat("sidecar_texts") == len(probes) * 2 + 1000

    sidecar.kill()
    wait_for(lambda: server.info("sidecars_live") == "0", what="the sidecar to stop counting as live")
    c.config_set("agentic.classify-tier", "model")
    on_cpu = scores_of(server, probes)

    changed = sum(any(abs(a[t] - b[t]) > 0.05 for t in a) for a, b in zip(base, on_sidecar))
    assert changed == len(probes), f"the heads score the sidecar's vectors: {changed} of {len(probes)} changed"
    for s, h in zip(on_sidecar, on_cpu):
        assert s.keys() == h.keys()
        assert max(s, key=s.get) == max(h, key=h.get)
        assert all(math.isclose(s[t], h[t], rel_tol=1e-3, abs_tol=2e-3) for t in s), (s, h)


def test_a_batch_that_times_out_goes_to_the_cpu_and_the_late_result_is_refused(start_server, start_sidecar):
    server = start_server("sidecar-timeout-ms", "300", "sidecar-ttl-ms", "5000")
    sidecar = start_sidecar(server, SIDECAR_DEBUG_DELAY_MS=1500)
    live(server)
    answers = classify_all(server, [f"late batch {i}" for i in range(5)])
    assert all(answers), answers
    assert server.stat("sidecar_timeouts") >= 1 and server.stat("sidecar_fallbacks") >= 1
    wait_for(lambda: server.stat("sidecar_late_results") >= 1, what="the late result to arrive")
    wait_for(lambda: "refused batch" in sidecar.output(), what="the sidecar to log the refusal")


def test_a_sidecar_killed_mid_batch_does_not_lose_requests(start_server, start_sidecar):
    server = start_server("sidecar-timeout-ms", "60000", "sidecar-ttl-ms", "500")
    sidecar = start_sidecar(server, SIDECAR_DEBUG_DELAY_MS=60000)
    live(server)
    results: list = []
    worker = threading.Thread(target=lambda: results.extend(classify_all(server, [f"orphan {i}" for i in range(3)])))
    worker.start()

    def in_flight():
        rows = server.client().execute_command("AGENT.SIDECAR.LIST")
        return rows and rows[0][rows[0].index("inflight") + 1] >= 1

    wait_for(in_flight, what="a batch in flight")
    sidecar.kill()
    worker.join(timeout=20)
    assert len(results) == 3 and all(results)
    # The batch in flight came back to the CPU; texts still queued were taken by the CPU directly.
    assert server.stat("sidecar_timeouts") >= 1 and server.stat("sidecar_fallbacks") >= 1


def test_a_failing_sidecar_hands_its_batches_back(start_server, start_sidecar):
    server = start_server()
    start_sidecar(server, SIDECAR_DEBUG_FAIL=1)
    live(server)
    assert all(classify_all(server, ["one", "two", "three"]))
    assert server.stat("sidecar_failures") >= 1 and server.stat("sidecar_fallbacks") == 3


def test_a_sidecar_with_another_model_is_refused(start_server, start_sidecar, tmp_path):
    server = start_server()
    with pytest.raises(redis.ResponseError, match="not the server's model-dir"):
        server.client().execute_command("AGENT.SIDECAR.NEXT", "x", "DEVICE", "cpu", "MODEL", "0123456789abcdef", "BLOCK", 0)
    other = tmp_path / "model"
    other.mkdir()
    (other / "model.onnx").write_bytes((TINY_MODEL / "model.onnx").read_bytes())
    (other / "tokenizer.json").write_text((TINY_MODEL / "tokenizer.json").read_text().replace('"[UNK]"', '"[unk]"', 1))
    p = start_sidecar(server, MODEL_DIR=str(other))
    assert p.proc.wait(timeout=30) == 2
    assert "not the server's model-dir" in p.output()
    assert server.info("sidecars_live") == "0"


def queue_for(server, side, sidecar_id: str, texts: list[str], answers: list) -> threading.Thread:
    """Registers `sidecar_id` as live (a NEXT that returns at once), then queues `texts` from
    another client; they wait for the sidecar because one is live."""
    assert side.execute_command("AGENT.SIDECAR.NEXT", sidecar_id, "DEVICE", "cpu", "MODEL", fingerprint(str(TINY_MODEL)), "BLOCK", 0) is None
    asker = threading.Thread(target=lambda: answers.extend(classify_all(server, texts)))
    asker.start()
    wait_for(lambda: server.info("queue_depth") == str(len(texts)), what="the texts to queue for the sidecar")
    return asker


def test_bad_results_are_refused_and_change_nothing(start_server):
    server = start_server("sidecar-ttl-ms", "5000")
    fp = fingerprint(str(TINY_MODEL))
    side = server.client()
    dim = int(server.info("model_dim"))
    answers: list = []
    asker = queue_for(server, side, "manual", ["a", "b"], answers)
    batch = side.execute_command("AGENT.SIDECAR.NEXT", "manual", "DEVICE", "cpu", "MODEL", fp, "BATCH", 8, "BLOCK", 100)
    batch_id, max_tokens, texts = batch
    assert max_tokens == 64 and sorted(texts) == ["a", "b"]
    good = struct.pack(f"<{dim * 2}f", *([1.0] + [0.0] * (dim - 1)) * 2)
    for args, reason in [
        ((batch_id + 1000, "VECTORS", dim, good), "no batch"),
        ((batch_id, "VECTORS", dim + 1, good), "not the model's"),
        ((batch_id, "VECTORS", dim, good[:-1]), "whole number"),
        ((batch_id, "VECTORS", dim, struct.pack(f"<{dim * 2}f", *([math.nan] * dim * 2))), "NaN"),
        ((batch_id, "FLOATS", dim, good), "expected VECTORS"),
    ]:
        with pytest.raises(redis.ResponseError, match=reason):
            side.execute_command("AGENT.SIDECAR.RESULT", "manual", *args)
    with pytest.raises(redis.ResponseError, match="another sidecar"):
        side.execute_command("AGENT.SIDECAR.RESULT", "someone-else", batch_id, "VECTORS", dim, good)
    assert answers == [], "refused results answered nobody"
    # The right result answers both clients; a second copy of it is refused.
    assert side.execute_command("AGENT.SIDECAR.RESULT", "manual", batch_id, "VECTORS", dim, good) == "OK"
    asker.join(timeout=10)
    assert len(answers) == 2 and answers[0] == answers[1]
    with pytest.raises(redis.ResponseError, match="no batch"):
        side.execute_command("AGENT.SIDECAR.RESULT", "manual", batch_id, "VECTORS", dim, good)
    for bad, reason in [(("DEVICE", "cpu", "BATCH", 8), "MODEL is required"), (("MODEL", fp, "BATCH", 8), "DEVICE is required"), (("DEVICE", "cpu", "MODEL", fp, "BATCH", 0), "BATCH")]:
        with pytest.raises(redis.ResponseError, match=reason):
            side.execute_command("AGENT.SIDECAR.NEXT", "manual", *bad)


def test_a_wrong_count_of_vectors_falls_back(start_server):
    server = start_server("sidecar-ttl-ms", "5000")
    fp = fingerprint(str(TINY_MODEL))
    side = server.client()
    dim = int(server.info("model_dim"))
    answers: list = []
    asker = queue_for(server, side, "m", ["x", "y", "z"], answers)
    batch_id = side.execute_command("AGENT.SIDECAR.NEXT", "m", "DEVICE", "cpu", "MODEL", fp, "BLOCK", 100)[0]
    with pytest.raises(redis.ResponseError, match="goes to the CPU pool"):
        side.execute_command("AGENT.SIDECAR.RESULT", "m", batch_id, "VECTORS", dim, struct.pack(f"<{dim}f", *([0.5] * dim)))
    asker.join(timeout=10)
    assert len(answers) == 3 and all(answers)
    assert server.stat("sidecar_fallbacks") >= 3


def test_enrich_use_cuda_1_without_a_gpu_exits_with_the_reason(start_server, start_sidecar):
    server = start_server()
    p = start_sidecar(server, ENRICH_USE_CUDA=1)
    assert p.proc.wait(timeout=60) == 2
    assert "ENRICH_USE_CUDA=1 but" in p.output()


def test_the_pipeline_classifies_through_a_live_sidecar(start_server, start_sidecar):
    server = start_server("pipeline", "yes", "seen-fp-ppm", "1")
    start_sidecar(server)
    live(server)
    c = server.client()
    c.execute_command("AGENT.SUBSCRIBE", "user:{s}", *[t[1] for t in c.execute_command("AGENT.TOPIC.LIST")])
    for i in range(20):
        c.xadd("news_raw", {"id": f"s{i}", "data": f'{{"id":"s{i}","title":"Sidecar article {i}","text":"body {i}"}}'})
    wait_for(lambda: server.stat("pipeline_delivered") == 20, what="20 articles through the pipeline")
    assert server.stat("sidecar_texts") == 20
    assert len(c.execute_command("AGENT.FEED", "user:{s}", "COUNT", 100)) == 20


def test_a_sidecar_serves_over_tls(start_server, start_sidecar):
    """rediss:// with the CA in the URL (ssl_ca_certs), as the `sidecar` ACL user."""
    server = start_server("classify-threads", "1")
    start_sidecar(server, VALKEY_URL=server.tls_url)
    live(server)
    texts = fixed_texts(50)
    classify_all(server, texts)
    assert server.stat("sidecar_texts") == len(texts), "the sidecar connected over TLS served every text"
