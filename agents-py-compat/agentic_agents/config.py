"""Every environment variable of the agents: the reference's names, defaults and validation."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

# What redis-py understands.
VALKEY_URL_SCHEMES = ("redis", "rediss", "unix")
ENRICH_USE_CUDA_CHOICES = ("auto", "1", "0")


class ConfigError(ValueError):
    """One or more environment variables are invalid; the message names each of them."""


@dataclass(frozen=True)
class Config:
    valkey_url: str = "redis://localhost:6379"
    # None leaves the module's agentic.feed-len as it is.
    feed_len: int | None = None
    topic_maxlen: int = 10_000
    news_raw_maxlen: int = 5_000
    enrich_use_cuda: str = "auto"
    enrich_batch: int = 32
    replay_file: Path = Path("data/news_sample.csv")
    replay_rate: float = 250.0
    pop_rate: float = 0.05
    max_reader_rps: float = 200.0
    seed_rate: float = 0.5
    # 0 seeds without end, as the reference did.
    seed_users: int = 0
    # None means the agent's own default port.
    metrics_port: int | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Reads and checks every variable; raises ConfigError listing all invalid ones at once."""
        env = _Env(os.environ if environ is None else environ)
        config = cls(
            valkey_url=env.valkey_url("VALKEY_URL", cls.valkey_url),
            feed_len=env.integer("FEED_LEN", None, minimum=1, maximum=100_000),
            topic_maxlen=env.integer("TOPIC_MAXLEN", cls.topic_maxlen, minimum=1),
            news_raw_maxlen=env.integer("NEWS_RAW_MAXLEN", cls.news_raw_maxlen, minimum=1),
            enrich_use_cuda=env.choice("ENRICH_USE_CUDA", cls.enrich_use_cuda, ENRICH_USE_CUDA_CHOICES),
            enrich_batch=env.integer("ENRICH_BATCH", cls.enrich_batch, minimum=1, maximum=10_000),
            replay_file=Path(env.text("REPLAY_FILE", str(cls.replay_file))),
            replay_rate=env.number("REPLAY_RATE", cls.replay_rate, minimum=0.0),
            pop_rate=env.number("POP_RATE", cls.pop_rate, minimum=0.0),
            max_reader_rps=env.number("MAX_READER_RPS", cls.max_reader_rps, minimum=0.0, exclusive_minimum=True),
            seed_rate=env.number("SEED_RATE", cls.seed_rate, minimum=0.0),
            seed_users=env.integer("SEED_USERS", cls.seed_users, minimum=0),
            metrics_port=env.integer("METRICS_PORT", None, minimum=1, maximum=65_535),
        )
        if env.errors:
            raise ConfigError("\n".join(env.errors))
        return config


class _Env:
    """Parses variables, collecting one message per invalid variable instead of stopping at the first."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.errors: list[str] = []

    def _raw(self, name: str) -> str | None:
        """The trimmed value, or None when the variable is unset or blank (blank = default, as in compose files)."""
        value = self.environ.get(name)
        if value is None or not value.strip():
            return None
        return value.strip()

    def text(self, name: str, default: str) -> str:
        raw = self._raw(name)
        return default if raw is None else raw

    def integer(self, name: str, default, *, minimum: int, maximum: int | None = None):
        raw = self._raw(name)
        if raw is None:
            return default
        expected = f"an integer >= {minimum}" if maximum is None else f"an integer from {minimum} to {maximum}"
        try:
            value = int(raw)
        except ValueError:
            self.errors.append(f"{name}={raw!r}: expected {expected}")
            return default
        if value < minimum or (maximum is not None and value > maximum):
            self.errors.append(f"{name}={raw!r}: expected {expected}")
            return default
        return value

    def number(self, name: str, default: float, *, minimum: float, exclusive_minimum: bool = False) -> float:
        raw = self._raw(name)
        if raw is None:
            return default
        expected = f"a number {'>' if exclusive_minimum else '>='} {minimum:g}"
        try:
            value = float(raw)
        except ValueError:
            self.errors.append(f"{name}={raw!r}: expected {expected}")
            return default
        too_small = value <= minimum if exclusive_minimum else value < minimum
        if not math.isfinite(value) or too_small:
            self.errors.append(f"{name}={raw!r}: expected {expected}")
            return default
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        if raw.lower() not in choices:
            self.errors.append(f"{name}={raw!r}: expected one of {', '.join(choices)}")
            return default
        return raw.lower()

    def valkey_url(self, name: str, default: str) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        parts = urlsplit(raw)
        if parts.scheme not in VALKEY_URL_SCHEMES:
            schemes = ", ".join(f"{s}://" for s in VALKEY_URL_SCHEMES)
            self.errors.append(f"{name}={raw!r}: expected a URL starting with one of {schemes}")
            return default
        if parts.scheme != "unix":
            try:
                parts.port  # noqa: B018 - raises ValueError on a non-numeric or out-of-range port
            except ValueError as e:
                self.errors.append(f"{name}={raw!r}: {e}")
                return default
            if not parts.hostname:
                self.errors.append(f"{name}={raw!r}: no host")
                return default
        return raw
