"""The vector selectors of a PromQL expression, enough to check that the dashboard's and the
alerts' queries name metrics that exist (promtool checks the syntax itself)."""

from __future__ import annotations

import re

_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"'  # string
    r"|\[[^\]]*\]"  # range or subquery: [5m], [$__rate_interval]
    r"|\{[^}]*\}"  # label matchers
    r"|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?"  # number
    r"|[a-zA-Z_:][a-zA-Z0-9_:]*"  # identifier
    r"|\S"
)
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
# Followed by a parenthesised label list, not by a function's arguments; an identifier followed by
# one of them is an aggregation (`sum by (le) (...)`).
_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_OPERATORS = {"and", "or", "unless", "bool"}


def selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """(metric name, {label: value} of its `=` matchers) for every vector selector."""
    tokens = _TOKEN.findall(expr)
    found = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if tok in _GROUPING:
            if nxt == "(":
                i = tokens.index(")", i)
        elif tok in _OPERATORS or nxt == "(" or nxt in _GROUPING or not re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", tok):
            pass
        else:
            matchers = {}
            if nxt.startswith("{"):
                matchers = {label: value for label, op, value in _MATCHER.findall(nxt) if op == "="}
            found.append((tok, matchers))
        i += 1
    return found


def missing_from(expr: str, names: set[str], script_keys: set[str]) -> list[str]:
    """Metrics of `expr` absent from a scrape: names, and the AGENT.STATS keys of
    redis_script_values{key="..."}."""
    missing = []
    for name, matchers in selectors(expr):
        if name not in names:
            missing.append(name)
        elif name == "redis_script_values" and matchers.get("key") not in script_keys:
            missing.append(f'redis_script_values{{key="{matchers.get("key")}"}}')
    return missing
