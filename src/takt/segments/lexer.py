"""Tokens of the segment language's text form."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from enum import Enum

from takt.segments.errors import SegmentError
from takt.segments.limits import MAX_DIGITS


class T(Enum):
    IDENT = "name"
    STRING = "string"
    NUMBER = "number"
    DATE = "date"
    DURATION = "duration"
    OP = "operator"
    PUNCT = "punctuation"
    EOF = "end of input"


@dataclass(frozen=True, slots=True)
class Token:
    type: T
    text: str
    start: int
    end: int
    value: object = None

    def is_word(self, *words: str) -> bool:
        return self.type is T.IDENT and self.text in words

    def is_punct(self, *chars: str) -> bool:
        return self.type is T.PUNCT and self.text in chars

    def describe(self) -> str:
        if self.type is T.EOF:
            return "the end of the definition"
        return repr(self.text)


IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?![A-Za-z0-9_])")
_DURATION = re.compile(r"(\d+)([hdw])(?![A-Za-z0-9_])")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![A-Za-z0-9_])")
_OPS = ("!=", "<=", ">=", "=", "<", ">")
_PUNCT = "()[],."


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c in " \t\r\n":
            i += 1
            continue
        if c == "#":  # comment to the end of the line
            while i < n and source[i] != "\n":
                i += 1
            continue
        if c == '"':
            j = i + 1
            while j < n and source[j] != '"':
                if source[j] == "\n":
                    break
                j += 2 if source[j] == "\\" else 1
            if j >= n or source[j] != '"':
                raise SegmentError("unterminated string", source=source, start=i, end=min(j, n),
                                   hint='strings end with a double quote: "..."')
            raw = source[i : j + 1]
            try:
                value = json.loads(raw)
            except ValueError:
                raise SegmentError("invalid escape in string", source=source, start=i, end=j + 1,
                                   hint='use \\" for a quote and \\\\ for a backslash') from None
            tokens.append(Token(T.STRING, raw, i, j + 1, value))
            i = j + 1
            continue
        if c.isdigit() or (c == "-" and i + 1 < n and source[i + 1].isdigit()):
            if m := _DATE.match(source, i):
                try:
                    d = date(int(m[1]), int(m[2]), int(m[3]))
                except ValueError:
                    raise SegmentError(f"{m[0]} is not a date", source=source, start=i, end=m.end(),
                                       hint="dates are written YYYY-MM-DD") from None
                tokens.append(Token(T.DATE, m[0], i, m.end(), d))
                i = m.end()
                continue
            digits = len(source[i:]) - len(source[i:].lstrip("-0123456789"))
            if digits > MAX_DIGITS:
                raise SegmentError(f"a number of {digits} digits is too long", source=source, start=i,
                                   end=i + digits, hint=f"numbers have at most {MAX_DIGITS} digits")
            if m := _DURATION.match(source, i):
                tokens.append(Token(T.DURATION, m[0], i, m.end(), (int(m[1]), m[2])))
                i = m.end()
                continue
            if m := _NUMBER.match(source, i):
                text = m[0]
                num: int | float = float(text) if any(ch in text for ch in ".eE") else int(text)
                tokens.append(Token(T.NUMBER, text, i, m.end(), num))
                i = m.end()
                continue
            j = i + 1
            while j < n and (source[j].isalnum() or source[j] == "_"):
                j += 1
            raise SegmentError(f"{source[i:j]!r} is not a number, a duration or a date", source=source,
                               start=i, end=j, hint="durations are like 30d, 12h, 2w; dates like 2026-01-31")
        if m := IDENT_RE.match(source, i):
            tokens.append(Token(T.IDENT, m[0], i, m.end()))
            i = m.end()
            continue
        op = next((o for o in _OPS if source.startswith(o, i)), None)
        if op:
            tokens.append(Token(T.OP, op, i, i + len(op)))
            i += len(op)
            continue
        if c in _PUNCT:
            tokens.append(Token(T.PUNCT, c, i, i + 1))
            i += 1
            continue
        hint = "use = for equality" if c == "!" else ("use and / or" if c in "&|" else "")
        raise SegmentError(f"unexpected character {c!r}", source=source, start=i, end=i + 1, hint=hint)
    tokens.append(Token(T.EOF, "", n, n))
    return tokens
