"""The build commands of the Makefile and of docker/Dockerfile, in one comparable form: a list of
(working directory relative to the repository root, command) for the build tools below."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

# Programs whose commands build something; setup around them (apt-get, install-deps.sh, echo,
# tests of existing outputs) differs between a machine and an image by design.
BUILD_TOOLS = {"cargo", "python3", "npm"}
_SHELL_KEYWORDS = {"if", "then", "else", "elif", "fi", "do", "done"}


def _join_continuations(text: str) -> list[str]:
    lines, current = [], ""
    for raw in text.splitlines():
        if raw.endswith("\\"):
            current += raw[:-1] + " "
        else:
            lines.append(current + raw)
            current = ""
    return lines


def _split_shell(script: str) -> list[str]:
    """Split at ;, &&, || and newlines outside quotes."""
    parts, current, quote, i = [], "", None, 0
    while i < len(script):
        c = script[i]
        if quote:
            quote = None if c == quote else quote
            current += c
        elif c in "'\"":
            quote = c
            current += c
        elif script.startswith(("&&", "||"), i):
            parts.append(current)
            current = ""
            i += 1
        elif c in ";\n":
            parts.append(current)
            current = ""
        else:
            current += c
        i += 1
    parts.append(current)
    return parts


def build_commands(script: str) -> list[tuple[str, str]]:
    """(cwd, command) of every build-tool command of a shell script; `cd dir` moves the cwd."""
    cwd, found = ".", []
    for part in _split_shell(script):
        words = part.strip().lstrip("@-").split()
        while words and words[0] in _SHELL_KEYWORDS:
            words = words[1:]
        if not words:
            continue
        if words[0] == "cd" and len(words) == 2:
            cwd = words[1]
        elif words[0] in BUILD_TOOLS:
            found.append((cwd, " ".join(words)))
    return found


@dataclass
class Makefile:
    variables: dict[str, str] = field(default_factory=dict)
    prerequisites: dict[str, list[str]] = field(default_factory=dict)
    recipes: dict[str, list[str]] = field(default_factory=dict)

    def expand(self, text: str) -> str:
        return re.sub(r"\$\((\w+)\)", lambda m: self.variables.get(m.group(1), m.group(0)), text)

    def commands(self, target: str) -> list[tuple[str, str]]:
        """Build commands of a target's recipe and of its prerequisites' recipes, in order."""
        found = []
        for prerequisite in self.prerequisites.get(target, []):
            if prerequisite in self.recipes:
                found += self.commands(prerequisite)
        for line in self.recipes.get(target, []):
            found += build_commands(self.expand(line).replace("$$", "$"))
        return found


def parse_makefile(path: Path) -> Makefile:
    mk = Makefile()
    target = None
    for line in _join_continuations(path.read_text()):
        if line.startswith("\t"):
            if target:
                mk.recipes[target].append(line[1:])
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        var = re.match(r"^(\w+)\s*(?:\?=|:=|=)\s*(.*)$", line)
        if var:
            mk.variables[var.group(1)] = var.group(2).strip()
            target = None
            continue
        rule = re.match(r"^([^\s:=][^:=]*?)\s*:(?!=)\s*(.*)$", line)
        if rule and not rule.group(1).startswith("."):
            target = mk.expand(rule.group(1))
            mk.prerequisites[target] = mk.expand(rule.group(2)).split()
            mk.recipes[target] = []
        else:
            target = None
    return mk


@dataclass
class Stage:
    base: str
    runs: list[str] = field(default_factory=list)
    copies: list[tuple[list[str], str, str | None]] = field(default_factory=list)  # (sources, destination, --from stage)
    instructions: dict[str, str] = field(default_factory=dict)  # the last ENTRYPOINT, HEALTHCHECK, CMD, USER...

    def build_commands(self) -> list[tuple[str, str]]:
        return [c for run in self.runs for c in build_commands(run)]


def parse_dockerfile(path: Path) -> dict[str, Stage]:
    stages: dict[str, Stage] = {}
    stage = None
    for line in _join_continuations(path.read_text()):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            m = re.match(r"^(\S+)\s+AS\s+(\S+)$", args, re.IGNORECASE)
            assert m, f"every stage is named: {line}"
            stage = stages[m.group(2)] = Stage(base=m.group(1))
        elif instruction == "RUN":
            stage.runs.append(args)
        elif instruction == "COPY":
            words = args.split()
            source_stage = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
            paths = [w for w in words if not w.startswith("--")]
            stage.copies.append((paths[:-1], paths[-1], source_stage))
        else:
            stage.instructions[instruction] = args
    return stages
