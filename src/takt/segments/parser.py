"""Text form → syntax tree: a small recursive-descent parser.

Grammar (``docs/segments.md`` has the meaning of each form)::

    condition  := and ("or" and)*
    and        := unary ("and" unary)*
    unary      := "not" unary | "(" condition ")" | "in" "segment" "(" STRING ")" | operand predicate?
    predicate  := CMP value | "in" "[" value ("," value)* "]" | "contains" STRING | "exists"
                | "within" DURATION | "before" DATE | "after" DATE
    operand    := "trait" "." name ("from" NAME)? | "properties" "." name ("." name)*
                | AGG "(" name STRING? ("." name)* ("where" condition)? window? ")"
                | "interest" "(" STRING ")" | "top_interest" | "touchpoint" "(" STRING ")" "." ("count" | "last_at")
                | "first_seen" | "last_seen" | "interest_shifted" | NAME "(" (value ("," value)*)? ")"
    window     := "in" "last" DURATION | "between" DATE "and" DATE
    name       := NAME | STRING
    value      := STRING | NUMBER | "true" | "false"

After parsing, :func:`takt.segments.check.check` types the tree and checks names against the vocabulary and
the function registry, so every error points into the source.
"""

from __future__ import annotations

from datetime import date
from typing import cast

from takt.segments import ast as a
from takt.segments import limits
from takt.segments.errors import SegmentError, suggest
from takt.segments.functions import FUNCTIONS, FunctionRegistry
from takt.segments.lexer import T, Token, tokenize
from takt.segments.vocabulary import Vocabulary

OPERAND_WORDS = ("trait", "properties", "interest", "top_interest", "touchpoint", *a.PROFILE_TIMES,
                 *a.AGGREGATE_FUNCS)
PREDICATE_WORDS = ("in", "contains", "exists", "within", "before", "after", "from")


def parse(
    source: str, vocabulary: Vocabulary | None = None, functions: FunctionRegistry | None = None
) -> a.Condition:
    """Parse and check a segment definition; raises :class:`SegmentError` pointing into ``source``."""
    from takt.segments.check import check

    node = Parser(source, functions or FUNCTIONS, vocabulary or Vocabulary()).parse()
    check(node, vocabulary=vocabulary, functions=functions, source=source)
    return node


class Parser:
    def __init__(self, source: str, functions: FunctionRegistry, vocabulary: Vocabulary):
        self.source = source
        self.tokens = tokenize(source)
        self.i = 0
        self.functions = functions
        self.vocabulary = vocabulary
        self.depth = 0

    def deeper(self, start: Token) -> None:
        """One more level of nesting (a parenthesis, a ``not``, a ``where``), refused past the limit."""
        self.depth += 1
        if self.depth > limits.MAX_NESTING:
            raise self.error(f"conditions nest deeper than {limits.MAX_NESTING} levels", start,
                             hint="parentheses, not and where each add a level: flatten the definition")

    def checked(self, tok: Token, problem: str | None) -> Token:
        if problem is not None:
            raise self.error(problem, tok)
        return tok

    # ---- token helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, k: int = 1) -> Token:
        return self.tokens[min(self.i + k, len(self.tokens) - 1)]

    def advance(self) -> Token:
        t = self.tokens[self.i]
        if t.type is not T.EOF:
            self.i += 1
        return t

    def error(self, message: str, tok: Token | None = None, hint: str = "") -> SegmentError:
        t = tok or self.tok
        return SegmentError(message, source=self.source, start=t.start, end=max(t.end, t.start + 1), hint=hint)

    def expect_punct(self, ch: str, context: str) -> Token:
        if not self.tok.is_punct(ch):
            raise self.error(f"expected {ch!r} {context}, found {self.tok.describe()}")
        return self.advance()

    def expect_word(self, word: str, context: str) -> Token:
        if not self.tok.is_word(word):
            hint = f"did you mean {word!r}?" if self.tok.type is T.IDENT and suggest(self.tok.text, [word]) else ""
            raise self.error(f"expected {word!r} {context}, found {self.tok.describe()}", hint=hint)
        return self.advance()

    def expect(self, type_: T, context: str, hint: str = "") -> Token:
        if self.tok.type is not type_:
            raise self.error(f"expected a {type_.value} {context}, found {self.tok.describe()}", hint=hint)
        return self.advance()

    def span_from(self, start: Token) -> a.Span:
        end = self.tokens[self.i - 1].end if self.i > 0 else start.end
        return a.Span(start.start, max(end, start.end))

    # ---- conditions
    def parse(self) -> a.Condition:
        if self.tok.type is T.EOF:
            raise self.error("the definition is empty", hint='e.g. trait.country = "DE"')
        node = self.condition()
        if self.tok.type is not T.EOF:
            hint = ""
            if self.tok.type is T.IDENT:
                hint = _hint(self.tok.text, ("and", "or"))
            raise self.error(f"unexpected {self.tok.describe()}", hint=hint or "join conditions with and / or")
        return node

    def condition(self) -> a.Condition:
        start = self.tok
        items = [self.conjunction()]
        while self.tok.is_word("or"):
            self.advance()
            items.append(self.conjunction())
        return items[0] if len(items) == 1 else a.Or(tuple(items), span=self.span_from(start))

    def conjunction(self) -> a.Condition:
        start = self.tok
        items = [self.unary()]
        while self.tok.is_word("and"):
            self.advance()
            items.append(self.unary())
        return items[0] if len(items) == 1 else a.And(tuple(items), span=self.span_from(start))

    def unary(self) -> a.Condition:
        start = self.tok
        if start.is_word("not"):
            self.advance()
            self.deeper(start)
            item = self.unary()
            self.depth -= 1
            return a.Not(item, span=self.span_from(start))
        if start.is_punct("("):
            self.advance()
            self.deeper(start)
            node = self.condition()
            self.expect_punct(")", "to close the parenthesis")
            self.depth -= 1
            return node
        if start.is_word("in") and self.peek().is_word("segment"):
            self.advance()
            self.advance()
            self.expect_punct("(", "after segment")
            name = self.expect(T.STRING, "naming the segment", hint='in segment("vip")')
            self.expect_punct(")", "after the segment name")
            return a.InSegment(cast(str, name.value), span=self.span_from(start))
        operand = self.operand()
        return self.predicate(operand, start)

    def predicate(self, operand: a.Operand, start: Token) -> a.Condition:
        t = self.tok
        if t.type is T.OP:
            self.advance()
            if self.tok.type is T.OP and t.text == "=" and self.tok.text == "=":
                raise self.error("unexpected '='", self.tok, hint="equality is a single =")
            value = self.value(f"after {t.text}")
            return a.Compare(operand, cast(a.CompareOp, t.text), value, span=self.span_from(start))
        if t.is_word("in") and self.peek().is_punct("["):
            self.advance()
            self.advance()
            values = [self.value("in the list")]
            while self.tok.is_punct(","):
                self.advance()
                values.append(self.value("in the list"))
            self.expect_punct("]", "to close the list")
            return a.InList(operand, tuple(values), span=self.span_from(start))
        if t.is_word("contains"):
            self.advance()
            needle = self.expect(T.STRING, "after contains")
            return a.Contains(operand, cast(str, needle.value), span=self.span_from(start))
        if t.is_word("exists"):
            self.advance()
            return a.Exists(operand, span=self.span_from(start))
        if t.is_word("within"):
            self.advance()
            d = self.expect(T.DURATION, "after within", hint="e.g. within 30d")
            self.checked(d, limits.duration_problem(_duration(d)))
            return a.Within(operand, _duration(d), span=self.span_from(start))
        if t.is_word("before", "after"):
            self.advance()
            d = self.expect(T.DATE, f"after {t.text}", hint="dates are written YYYY-MM-DD")
            self.checked(d, limits.day_problem(cast(date, d.value)))
            cls = a.Before if t.text == "before" else a.After
            return cls(operand, d.value, span=self.span_from(start))  # type: ignore[arg-type]
        # no predicate: a boolean function, or a provenance filter on its own
        if isinstance(operand, a.Call):
            return a.CallCondition(operand, span=self.span_from(start))
        if isinstance(operand, a.TraitRef) and operand.provenance is not None:
            return a.Exists(operand, span=self.span_from(start))
        hint = _hint(t.text, PREDICATE_WORDS) if t.type is T.IDENT else ""
        if t.is_word("not"):
            from takt.segments.printer import operand_text

            hint = f"put not in front: not {operand_text(operand)} ..."
        raise self.error(
            f"expected a comparison (= != < <= > >=, in [...], contains, exists, within, before, after), "
            f"found {t.describe()}",
            hint=hint,
        )

    # ---- operands
    def operand(self) -> a.Operand:
        start = self.tok
        if start.type is not T.IDENT:
            raise self.error(f"expected a condition, found {start.describe()}",
                             hint='e.g. trait.country = "DE" or count(track "Order Completed") >= 1')
        word = start.text
        nxt = self.peek()
        if word == "trait" and nxt.is_punct("."):
            self.advance()
            self.advance()
            name = self.name("after trait.")
            provenance = None
            if self.tok.is_word("from"):
                self.advance()
                provenance = self.expect(T.IDENT, "after from", hint="e.g. from customer_provided").text
            return a.TraitRef(name, provenance, span=self.span_from(start))
        if word == "properties" and nxt.is_punct("."):
            self.advance()
            return a.PropertyRef(self.path(), span=self.span_from(start))
        if word in a.AGGREGATE_FUNCS and nxt.is_punct("("):
            return self.aggregate()
        if word == "interest" and nxt.is_punct("("):
            self.advance()
            self.advance()
            key = self.expect(T.STRING, "naming the interest", hint='interest("destination:new-york")')
            self.expect_punct(")", "after the interest key")
            return a.Interest(cast(str, key.value), span=self.span_from(start))
        if word == "touchpoint" and nxt.is_punct("("):
            self.advance()
            self.advance()
            tp = self.expect(T.STRING, "naming the touchpoint", hint='touchpoint("app").count')
            self.expect_punct(")", "after the touchpoint")
            self.expect_punct(".", 'after touchpoint(...): .count or .last_at')
            f = self.expect(T.IDENT, "after touchpoint(...).", hint="count or last_at")
            if f.text not in a.TOUCHPOINT_FIELDS:
                raise self.error(f"a touchpoint has no {f.text!r}", f,
                                 hint=_hint(f.text, a.TOUCHPOINT_FIELDS) or "use .count or .last_at")
            return a.Touchpoint(cast(str, tp.value), f.text, span=self.span_from(start))  # type: ignore[arg-type]
        if word == "top_interest":
            self.advance()
            return a.TopInterest(span=self.span_from(start))
        if word in a.PROFILE_TIMES:
            self.advance()
            return a.ProfileTime(word, span=self.span_from(start))  # type: ignore[arg-type]
        if nxt.is_punct("("):
            return self.call()
        spec = self.functions.get(word)
        if spec is not None:
            sig = ", ".join(f"{n}: {t}" for n, t in spec.params)
            raise self.error(f"{word} is a function: give its arguments, {word}({sig})",
                             hint=f"e.g. {spec.example}" if spec.example else "")
        vocab_traits = [f"trait.{t}" for t in (self.vocabulary.traits or ())]
        hint = _hint(word, (*OPERAND_WORDS, *vocab_traits, *self.functions.names()))
        raise self.error(f"unknown name {word!r}", hint=hint or 'conditions start with e.g. trait., count(, interest(')

    def name(self, context: str) -> str:
        t = self.tok
        if t.type is T.IDENT:
            self.advance()
            return t.text
        if t.type is T.STRING:
            self.advance()
            return cast(str, t.value)
        raise self.error(f"expected a name {context}, found {t.describe()}")

    def path(self) -> tuple[str, ...]:
        """``.a.b`` (the leading dot is the current token)."""
        parts: list[str] = []
        while self.tok.is_punct("."):
            self.advance()
            parts.append(self.name("after ."))
        return tuple(parts)

    def aggregate(self) -> a.Aggregate:
        start = self.advance()
        func = cast(a.AggregateFunc, start.text)
        self.advance()  # (
        kt = self.tok
        if kt.type not in (T.IDENT, T.STRING):
            raise self.error(f"expected the kind of event after {func}(, found {kt.describe()}",
                             hint=f'e.g. {func}(track "Order Completed")')
        self.advance()
        kind = kt.text if kt.type is T.IDENT else cast(str, kt.value)
        name = None
        if self.tok.type is T.STRING:
            name = cast(str, self.advance().value)
        source = a.EventSource(kind, name, span=self.span_from(kt))
        prop = self.path() if self.tok.is_punct(".") else None
        where = None
        if self.tok.is_word("where"):
            self.deeper(self.advance())
            where = self.condition()
            self.depth -= 1
        window: a.Window | None = None
        if self.tok.is_word("in") and self.peek().type is T.IDENT:
            self.advance()
            self.expect_word("last", "after in")
            d = self.expect(T.DURATION, "after in last", hint="e.g. in last 30d")
            window = a.LastWindow(_duration(self.checked(d, limits.duration_problem(_duration(d)))))
        elif self.tok.is_word("between"):
            self.advance()
            d1 = self.expect(T.DATE, "after between", hint="between 2026-01-01 and 2026-03-31")
            self.checked(d1, limits.day_problem(cast(date, d1.value)))
            self.expect_word("and", "between the two dates")
            d2 = self.expect(T.DATE, "after and", hint="between 2026-01-01 and 2026-03-31")
            self.checked(d2, limits.day_problem(cast(date, d2.value)))
            if d2.value < d1.value:  # type: ignore[operator]
                raise self.error("the window ends before it starts", d2)
            window = a.BetweenWindow(d1.value, d2.value)  # type: ignore[arg-type]
        if not self.tok.is_punct(")"):
            hint = _hint(self.tok.text, ("where", "in", "between")) if self.tok.type is T.IDENT else ""
            raise self.error(f"expected ')' to close {func}(...), found {self.tok.describe()}",
                             hint=hint or "inside: the events, then where ..., then in last 30d or between ...")
        self.advance()
        return a.Aggregate(func, source, prop, where, window, span=self.span_from(start))

    def call(self) -> a.Call:
        start = self.advance()
        if start.text not in self.functions:
            from takt.segments.check import unknown_function_hint

            raise self.error(f"unknown function {start.text!r}", start,
                             hint=unknown_function_hint(start.text, self.functions))
        self.advance()  # (
        args: list[a.Value] = []
        if not self.tok.is_punct(")"):
            args.append(self.value("as an argument"))
            while self.tok.is_punct(","):
                self.advance()
                args.append(self.value("as an argument"))
        self.expect_punct(")", f"to close {start.text}(...)")
        return a.Call(start.text, tuple(args), span=self.span_from(start))

    def value(self, context: str) -> a.Value:
        t = self.tok
        if t.type in (T.STRING, T.NUMBER):
            self.advance()
            self.checked(t, limits.number_problem(cast(a.Value, t.value)))
            return cast(a.Value, t.value)
        if t.is_word("true", "false"):
            self.advance()
            return t.text == "true"
        hint = ""
        if t.type is T.IDENT:
            hint = _hint(t.text, ("true", "false")) or f'strings are quoted: "{t.text}"'
        raise self.error(f"expected a value {context}, found {t.describe()}", hint=hint)


def _duration(t: Token) -> a.Duration:
    amount, unit = cast(tuple[int, str], t.value)
    return a.Duration(amount, cast(a.DurationUnit, unit))


def _hint(word: str, candidates: tuple[str, ...] | list[str]) -> str:
    hits = suggest(word, candidates)
    return ("did you mean " + " or ".join(repr(h) for h in hits) + "?") if hits else ""
