"""Tokenisation exactly as the module does it (module/src/classify/encoder.rs `tokenize`), so
a text has the same tokens, and therefore the same vector, on both paths."""

from __future__ import annotations

from tokenizers import Tokenizer

MAX_POSITIONS = 512


def load(path: str) -> Tokenizer:
    return Tokenizer.from_file(path)


def tokenize(tok: Tokenizer, text: str, max_tokens: int) -> tuple[list[int], list[int]]:
    """(ids, type ids), at most `max_tokens` long; the final special token survives truncation."""
    max_tokens = min(max(max_tokens, 2), MAX_POSITIONS)
    # The module cuts the text at max_tokens * 16 bytes (on a character boundary) before
    # tokenising; cutting the UTF-8 bytes and dropping a partial last character is the same.
    cut = text.encode("utf-8")[: max_tokens * 16].decode("utf-8", errors="ignore")
    enc = tok.encode(cut, add_special_tokens=True)
    ids, types = list(enc.ids), list(enc.type_ids)
    if len(ids) > max_tokens:
        ends_special = bool(enc.special_tokens_mask) and enc.special_tokens_mask[-1] == 1
        last = (ids[-1], types[-1])
        ids, types = ids[:max_tokens], types[:max_tokens]
        if ends_special:
            ids[-1], types[-1] = last
    if not ids:
        raise ValueError("the tokenizer produced no tokens")
    return ids, types
