"""The raw article document as agentic-fetcher writes it into news_raw (fetcher/README.md, "The
stream contract"; fetcher/src/article.rs): same keys in the same order, same text cleaning, same ids,
so the module's in-server pipeline, the Python enrich agent and the fetcher's own readers all accept
what the replay agent writes, and a file replayed by either gives the same documents."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import xxhash

MAX_ID_LEN = 200

# Rust's char::is_whitespace (Unicode White_Space) plus the no-break space, as the fetcher splits.
_WHITESPACE = re.compile("[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")
_SCRIPT_OR_STYLE_END = {name: re.compile(f"</{name}", re.IGNORECASE | re.ASCII) for name in ("script", "style")}
_HEX = re.compile("[0-9a-fA-F]+")
_DECIMAL = re.compile("[0-9]+")
# The ISO 8601 shapes the fetcher reads (fromisoformat alone would take more, e.g. week dates).
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?)?")

# Tags that separate words; inline tags such as <b> do not, so `<b>4.5%</b>.` reads `4.5%.`.
_BLOCK_TAGS = frozenset(
    "p div br hr li ul ol dl dt dd h1 h2 h3 h4 h5 h6 table tr td th thead tbody blockquote pre section "
    "article header footer nav aside main figure figcaption img script style title address center form "
    "iframe video audio source body html head".split()
)

# The named entities the fetcher decodes; any other stays as written.
_NAMED_ENTITIES = {
    "amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'", "nbsp": " ",
    "ndash": "\u2013", "mdash": "\u2014", "lsquo": "\u2018", "rsquo": "\u2019", "ldquo": "\u201c",
    "rdquo": "\u201d", "hellip": "\u2026", "bull": "\u2022", "middot": "\u00b7", "copy": "\u00a9",
    "reg": "\u00ae", "trade": "\u2122", "euro": "\u20ac", "pound": "\u00a3", "yen": "\u00a5",
    "cent": "\u00a2", "deg": "\u00b0", "times": "\u00d7", "eacute": "\u00e9", "egrave": "\u00e8",
    "aacute": "\u00e1", "agrave": "\u00e0", "oacute": "\u00f3", "uacute": "\u00fa", "iacute": "\u00ed",
    "ntilde": "\u00f1", "ccedil": "\u00e7", "auml": "\u00e4", "ouml": "\u00f6", "uuml": "\u00fc",
    "szlig": "\u00df",
}  # fmt: skip


def build_article(raw_id: str | None, title: str, text: str, link: str | None, source: str, published: str | None) -> dict[str, str]:
    """The JSON document of one article, keys in the fetcher's order; `link` and `published` only
    when known. The id is `raw_id` (sanitised) if it is not blank, else a hash of title and text."""
    title = clean_text(title)
    text = clean_text(text)
    raw_id = raw_id.strip() if raw_id is not None else ""
    article = {"id": sanitize_id(raw_id) if raw_id else content_hash(title, text), "title": title, "text": text}
    link = link.strip() if link is not None else ""
    if link:
        article["link"] = link
    article["source"] = source
    published = normalize_date(published) if published is not None else None
    if published is not None:
        article["published"] = published
    return article


def to_json(article: dict[str, str]) -> str:
    """Compact UTF-8 JSON, as serde_json writes it."""
    return json.dumps(article, ensure_ascii=False, separators=(",", ":"))


def content_hash(title: str, text: str) -> str:
    """Hex xxh3-128 of `title \\n text`: the id of an article without one."""
    return xxhash.xxh3_128_hexdigest(f"{title}\n{text}".encode())


def sanitize_id(raw: str) -> str:
    """Keeps an id of 1-200 bytes of printable ASCII without spaces or braces (the pipeline stores
    `doc:{<id>}`, a hash tag); hashes anything else (the same raw id always gives the same id)."""
    encoded = raw.encode()
    if 0 < len(encoded) <= MAX_ID_LEN and all(0x21 <= b <= 0x7E and b not in b"{}" for b in encoded):
        return raw
    return xxhash.xxh3_128_hexdigest(encoded)


def normalize_date(raw: str) -> str | None:
    """RFC 3339 in UTC to the second (`2025-06-10T14:30:00Z`) from RFC 3339, RFC 2822 or
    `YYYY-MM-DD[ HH:MM:SS]` (no zone = UTC); None when unreadable."""
    text = raw.strip()
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text) if _ISO_DATE.fullmatch(text) else parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clean_text(raw: str) -> str:
    """Strips HTML tags (dropping <script>/<style> contents and comments), decodes entities and
    collapses whitespace to single spaces."""
    return " ".join(word for word in _WHITESPACE.split(_decode_entities(_strip_tags(raw))) if word)


def _strip_tags(s: str) -> str:
    """A `<` starts a tag only when followed by a letter, `/`, `!` or `?`, so `a < b` survives.
    Opening block-level tags become spaces so words do not run together."""
    out = []
    rest = s
    while (pos := rest.find("<")) != -1:
        out.append(rest[:pos])
        after = rest[pos + 1 :]
        first = after[:1]
        if not first or not ((first.isascii() and first.isalpha()) or first in "/!?"):
            out.append("<")
            rest = after
            continue
        if after.startswith("!--"):
            end = after.find("-->", 3)
            rest = after[end + 3 :] if end != -1 else ""
            out.append(" ")
            continue
        end = after.find(">")
        if end == -1:
            # an unterminated tag: the rest is dropped
            return "".join(out)
        tag = after[:end]
        rest = after[end + 1 :]
        name = re.match("[0-9A-Za-z]*", tag).group(0).lower()
        if name in _BLOCK_TAGS:
            out.append(" ")
        if name in _SCRIPT_OR_STYLE_END and not tag.endswith("/"):
            close = _SCRIPT_OR_STYLE_END[name].search(rest)
            if close is None:
                rest = ""
            else:
                end_of_close = rest.find(">", close.start())
                rest = rest[end_of_close + 1 :] if end_of_close != -1 else ""
    out.append(rest)
    return "".join(out)


def _decode_entity(name: str) -> str | None:
    if not name.startswith("#"):
        return _NAMED_ENTITIES.get(name)
    digits = name[1:]
    if digits[:1] in ("x", "X"):
        code = int(digits[1:], 16) if _HEX.fullmatch(digits[1:]) else None
    else:
        code = int(digits) if _DECIMAL.fullmatch(digits) else None
    # Rust's char::from_u32: no surrogates, nothing past U+10FFFF.
    if code is None or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code)


def _decode_entities(s: str) -> str:
    """Decodes `&name;`, `&#NNN;` and `&#xHH;` (names of at most 32 characters); anything else is kept."""
    if "&" not in s:
        return s
    out = []
    rest = s
    while (pos := rest.find("&")) != -1:
        out.append(rest[:pos])
        after = rest[pos + 1 :]
        semi = after.find(";")
        decoded = _decode_entity(after[:semi]) if 0 < semi <= 32 else None
        if decoded is None:
            out.append("&")
            rest = after
        else:
            out.append(decoded)
            rest = after[semi + 1 :]
    out.append(rest)
    return "".join(out)
