"""Segment errors: positioned, with the bad text underlined and "did you mean".

A :class:`SegmentError` raised for text carries the 1-based ``line`` and ``column``, the source line and a
caret line under the offending text, in the manner of sqlglot and rustc::

    error: unknown trait 'contry'
     --> line 1, column 1
      |
    1 | trait.contry = "DE"
      | ^^^^^^^^^^^^ did you mean 'country'?

Errors about a JSON form or a compile-time lookup carry a ``path`` instead (``$.items[0].left``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from takt.errors import TaktError


def suggest(word: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """The closest few candidates to ``word`` (case-insensitive), best first."""
    cands = sorted(set(candidates))
    lowered = {c.lower(): c for c in cands}
    hits = difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.6)
    return [lowered[h] for h in hits]


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    hits = suggest(word, candidates)
    if not hits:
        return ""
    return "did you mean " + " or ".join(repr(h) for h in hits) + "?"


class SegmentError(TaktError):
    """An invalid segment definition (or a segment that cannot be resolved)."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        start: int | None = None,
        end: int | None = None,
        hint: str = "",
        path: str | None = None,
    ):
        self.reason = message
        self.source = source
        self.start = start
        self.end = end
        self.hint = hint
        self.path = path
        self.line: int | None = None
        self.column: int | None = None
        detail: dict[str, Any] = {"reason": message}
        if source is not None and start is not None:
            self.line, self.column = _line_col(source, start)
            detail.update(line=self.line, column=self.column, end_column=self.column + max(1, (end or start) - start))
        if hint:
            detail["hint"] = hint
        if path is not None:
            detail["field"] = path
        super().__init__(message=self._render(), code="invalid_segment", status=400, errors=[detail])

    def _render(self) -> str:
        head = f"error: {self.reason}"
        if self.source is None or self.start is None or self.line is None or self.column is None:
            where = f" (at {self.path})" if self.path else ""
            return head + where + (f"\n  = {self.hint}" if self.hint else "")
        lines = self.source.split("\n")
        text = lines[self.line - 1] if self.line - 1 < len(lines) else ""
        end = self.end if self.end is not None and self.end > self.start else self.start + 1
        line_end = self.start - (self.column - 1) + len(text)
        width = max(1, min(end, line_end) - self.start) if self.start < line_end else 1
        gutter = " " * len(str(self.line))
        caret = " " * (self.column - 1) + "^" * width + (f" {self.hint}" if self.hint else "")
        return "\n".join(
            [
                head,
                f"{gutter}--> line {self.line}, column {self.column}",
                f"{gutter} |",
                f"{self.line} | {text}",
                f"{gutter} | {caret}",
            ]
        )

    def __str__(self) -> str:
        return self.message


def _line_col(source: str, offset: int) -> tuple[int, int]:
    before = source[:offset]
    line = before.count("\n") + 1
    column = offset - (before.rfind("\n") + 1) + 1
    return line, column
