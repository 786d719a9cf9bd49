"""Zero-shot AG News accuracy of the static tier's token table alone (issue 12), the way the module
scores zero-shot: a topic's vector is the normalised mean of its description's sentences'
vectors, a text's topic the one of highest cosine. The four AG News topics and their descriptions
are make eval's (bench/src/bin/classify_eval.rs, chosen on a development split, never on the test
set); the text of an item is `<title>. <text>`, as there.

    python model/eval_static.py --model-dir model/out/real [--split test|dev]

`dev` is rows 6429-10428 of the training prefix (the split descriptions are tuned on); `test` the
7,600 test items. The data is research-only: read from ../shared/data/ag_news (or $AG_NEWS_DIR),
never copied; without it the command says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import static_tier  # noqa: E402

CLASSES = {
    "World": "International news and world affairs. "
    "Governments, presidents, prime ministers and elections in countries around the world. "
    "Diplomacy, foreign policy, treaties and international summits. "
    "Wars, armed conflicts, military operations, terrorism, bombings and kidnappings. "
    "The United Nations, refugees, natural disasters and humanitarian crises.",
    "Sports": "Sports news. "
    "Results and reports from games, matches, races and tournaments. "
    "Football, baseball, basketball, hockey, soccer, tennis, golf, cycling and the Olympics. "
    "Athletes, players, coaches and managers, and their transfers, contracts and injuries. "
    "Teams, clubs, leagues, seasons and championships.",
    "Business": "Business and economic news. "
    "Companies, corporate earnings, profits, sales and forecasts. "
    "Mergers, acquisitions, takeovers, bankruptcies and lawsuits. "
    "Stock markets, shares, oil prices, the dollar, interest rates, inflation, jobs and trade. "
    "Banks, retailers, airlines, carmakers, investors and chief executives.",
    "Sci/Tech": "Science and technology news. "
    "Computers, software, operating systems, the internet and web search. "
    "Technology companies and their new products, such as mobile phones, chips and video games. "
    "Computer security, viruses, hackers and spam. "
    "Space exploration, NASA, scientific research, medicine, nature and new discoveries.",
}
DEV_ROWS = (6429, 10429)


def facets(description: str) -> list[str]:
    """The module's facets (scorer.rs): sentences, trimmed of their final stop."""
    parts = [p.strip().rstrip(".;").strip() for p in re.split(r"(?<=[.!?;])\s+|\n", description)]
    return [p for p in parts if any(c.isalnum() for c in p)] or [description]


def ag_news_dir() -> str:
    return os.environ.get("AG_NEWS_DIR") or os.path.join(HERE, "..", "..", "shared", "data", "ag_news")


def load(split: str) -> list[tuple[str, str]] | None:
    name = "ag_news_test.jsonl" if split == "test" else "ag_news_train_prefix10429.jsonl"
    path = os.path.join(ag_news_dir(), name)
    if not os.path.exists(path):
        return None
    rows = [json.loads(line) for line in open(path) if line.strip()]
    if split == "dev":
        rows = rows[DEV_ROWS[0] : DEV_ROWS[1]]
    return [(f"{r['title']}. {r['text']}", r["label"]) for r in rows]


def main() -> int:
    ap = argparse.ArgumentParser(description="zero-shot AG News accuracy of the static tier alone")
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--split", choices=["test", "dev"], default="dev")
    a = ap.parse_args()
    items = load(a.split)
    if items is None:
        print(f"eval_static: no AG News data in {ag_news_dir()} (research-only, never copied): skipped")
        return 0
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(a.model_dir, "tokenizer.json"))
    table = static_tier.read_table(os.path.join(a.model_dir, "static.bin"))
    labels = list(CLASSES)
    topics = []
    for label in labels:
        v = static_tier.static_embed(tok, table, facets(CLASSES[label])).mean(axis=0)
        topics.append(v / np.linalg.norm(v))
    topics = np.stack(topics)
    t0 = time.perf_counter()
    vectors = static_tier.static_embed(tok, table, [t for t, _ in items])
    seconds = time.perf_counter() - t0
    predicted = (vectors @ topics.T).argmax(axis=1)
    correct = sum(labels[p] == label for p, (_, label) in zip(predicted, items))
    print(
        f"static tier zero-shot, AG News {a.split} ({len(items):,} items): {100 * correct / len(items):.2f}% "
        f"({len(items) / seconds:,.0f} texts/s in Python, tokenising included)"
    )
    for label in labels:
        idx = [i for i, (_, l) in enumerate(items) if l == label]
        ok = sum(labels[predicted[i]] == label for i in idx)
        print(f"  {label:9} {100 * ok / max(1, len(idx)):.1f}% of {len(idx)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
