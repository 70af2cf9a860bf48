"""The runnable examples of docs/*.md: shell commands (``takt …``, ``curl …``) in fenced code blocks, and the
segment definitions the docs show (inline code in docs/segments.md's tables that parses as a definition)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"
FENCE = re.compile(r"^```(\w*)\s*$")
INLINE = re.compile(r"`([^`]+)`")


@dataclass(frozen=True)
class Example:
    doc: str
    line: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def key(self) -> str:
        """How ILLUSTRATIVE names it: the doc and the command (comments dropped) or definition."""
        words = self.argv() if self.text.startswith(("takt ", "curl ")) else None
        return f"{self.doc}: {shlex.join(words) if words is not None else self.text}"

    def argv(self) -> list[str]:
        """The command's words, comments and output redirection dropped."""
        words = shlex.split(self.text, comments=True)
        if ">" in words:
            words = words[:words.index(">")]
        return words


def commands(doc: Path) -> list[Example]:
    """Every ``takt``/``curl`` command in the doc's fenced (sh or plain) and indented code blocks, continuation
    lines joined."""
    out: list[Example] = []
    in_block = False
    lang = ""
    pending: list[str] = []
    start = 0
    for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        m = FENCE.match(line)
        if m:
            in_block = not in_block
            lang = m.group(1) if in_block else ""
            continue
        indented = not in_block and line.startswith(("    takt ", "    curl "))  # an indented code block
        if not pending and not indented and (not in_block or lang not in ("", "sh", "bash", "shell")):
            continue
        if pending:
            pending.append(line.strip())
        elif indented or line.startswith(("takt ", "curl ")):
            pending, start = [line.strip()], n
        else:
            continue
        if pending[-1].endswith("\\"):
            pending[-1] = pending[-1][:-1]
            continue
        out.append(Example(doc.name, start, " ".join(pending)))
        pending = []
    return out


def all_commands() -> list[Example]:
    return [e for doc in sorted(DOCS.glob("*.md")) for e in commands(doc)]


def definitions(doc: Path) -> list[Example]:
    """Inline code in the doc's table rows that parses as a whole segment definition."""
    from takt.segments import SegmentError, parse

    out: list[Example] = []
    for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        if not line.startswith("|"):
            continue
        for text in INLINE.findall(line):
            try:
                parse(text)
            except SegmentError:
                continue
            out.append(Example(doc.name, n, text))
    return out
