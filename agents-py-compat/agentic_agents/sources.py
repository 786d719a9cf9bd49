"""Articles read from a JSONL or CSV file with the fetcher's column rules (fetcher/README.md,
"replay"): `.csv` is CSV with a header row, anything else JSONL; malformed records are reported
with their line and the fetcher's reason names instead of stopping the replay."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .article import build_article, clean_text

# Accepted names of each field, first match wins (CSV headers compare case-insensitively).
ID_KEYS = ("id",)
TITLE_KEYS = ("title",)
TEXT_KEYS = ("text", "description", "summary", "content", "body")
LINK_KEYS = ("link", "url")
PUBLISHED_KEYS = ("published", "pubDate", "date")


class ReplayFileError(Exception):
    """The file cannot be replayed at all: unreadable, or a CSV header without title or text."""


@dataclass(frozen=True)
class Malformed:
    line: int
    reason: str  # invalid_json, not_an_object, invalid_csv, invalid_utf8, empty
    detail: str


@dataclass(frozen=True)
class _Fields:
    id: str | None
    title: str | None
    text: str | None
    link: str | None
    published: str | None


def read_articles(path: Path) -> Iterator[dict[str, str] | Malformed]:
    """Every record of the file, in order: an article document, or why the record was skipped."""
    try:
        if path.suffix.lower() == ".csv":
            yield from _read_csv(path)
        else:
            yield from _read_jsonl(path)
    except OSError as e:
        raise ReplayFileError(f"cannot read {path}: {e.strerror or e}") from e


def _article_or_malformed(fields: _Fields, line: int, source: str) -> dict[str, str] | Malformed:
    if not clean_text(fields.title or "") and not clean_text(fields.text or ""):
        return Malformed(line, "empty", "no title and no text")
    raw_id = fields.id if fields.id is not None and fields.id.strip() else None
    return build_article(raw_id, fields.title or "", fields.text or "", fields.link, source, fields.published)


def _json_string(value) -> str | None:
    """A JSON value usable as text: strings as they are, numbers in decimal, booleans as `true`/`false`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    return None


def _first_text(document: dict, keys: tuple[str, ...]) -> str | None:
    """The first of `keys` whose value is usable as text."""
    return next((text for key in keys if (text := _json_string(document.get(key))) is not None), None)


def _read_jsonl(path: Path) -> Iterator[dict[str, str] | Malformed]:
    with path.open("rb") as file:
        for line, raw in enumerate(file, 1):
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError as e:
                yield Malformed(line, "invalid_utf8", str(e))
                continue
            if not text:
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as e:
                yield Malformed(line, "invalid_json", str(e))
                continue
            if not isinstance(value, dict):
                yield Malformed(line, "not_an_object", "the line is JSON but not an object")
                continue
            fields = _Fields(*(_first_text(value, keys) for keys in (ID_KEYS, TITLE_KEYS, TEXT_KEYS, LINK_KEYS, PUBLISHED_KEYS)))
            yield _article_or_malformed(fields, line, path.name)


def _is_utf8(value: str) -> bool:
    """False when the file had bytes that are not UTF-8 here (kept as surrogate escapes)."""
    try:
        value.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _read_csv(path: Path) -> Iterator[dict[str, str] | Malformed]:
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as file:
        reader = csv.reader(file)
        try:
            header = next(reader)
        except (StopIteration, csv.Error) as e:
            raise ReplayFileError(f"{path.name}: cannot read the CSV header: {e or 'the file is empty'}") from None
        names = [h.strip().lstrip("\ufeff").lower() for h in header]

        def column(keys: tuple[str, ...]) -> int | None:
            return next((names.index(k.lower()) for k in keys if k.lower() in names), None)

        columns = [column(keys) for keys in (ID_KEYS, TITLE_KEYS, TEXT_KEYS, LINK_KEYS, PUBLISHED_KEYS)]
        if columns[1] is None and columns[2] is None:
            raise ReplayFileError(f"{path.name}: the CSV header {names} has neither a title nor a text/description column")
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                yield Malformed(reader.line_num, "invalid_csv", str(e))
                continue
            if not row:
                continue
            if len(row) != len(header):
                yield Malformed(reader.line_num, "invalid_csv", f"found a record with {len(row)} fields, the header has {len(header)}")
                continue
            if not all(_is_utf8(value) for value in row):
                yield Malformed(reader.line_num, "invalid_utf8", "the record is not valid UTF-8")
                continue
            fields = _Fields(*(row[i] if i is not None else None for i in columns))
            yield _article_or_malformed(fields, reader.line_num, path.name)
