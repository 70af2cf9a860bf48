"""Message templates: Jinja2 in a sandbox, checked when a campaign is validated, rendered per person.

A template sees five names: ``traits`` (the person's traits by name), ``interests`` (interest → score),
``offer`` (the next-best offer: ``id``, ``title`` …, or nothing), ``profile`` (the profile id) and
``unsubscribe_url``. Everything else is refused at validation, with "did you mean".

**Never an empty greeting.** A person may lack any trait, interest or offer, so every such reference
(``traits.firstName``, ``interests["destination:new-york"]``, ``offer.title``) must have a fallback: a default
declared in the message (``"defaults": {"traits.firstName": "there"}``), Jinja's ``default`` filter
(``{{ traits.firstName | default("there") }}``), or an enclosing ``{% if traits.firstName is defined %}``.
A reference without one is a validation error pointing at its line and column; at render time the environment
is strict (``StrictUndefined``), so nothing missing is ever printed as an empty string.

**The sandbox.** :class:`jinja2.sandbox.SandboxedEnvironment`, plus: attributes starting with ``_`` are refused at
validation (and by the sandbox at render), ``**`` and ``*`` are bounded, and the rendered text is capped. HTML
fields are autoescaped, text fields are not. A rendering failure is a per-person :class:`Skip` with a reason,
never an exception out of :func:`render`.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from takt.segments.errors import did_you_mean

logger = logging.getLogger(__name__)

ROOTS = ("traits", "interests", "offer", "profile", "unsubscribe_url")
"""The names a template may use."""
ALWAYS = frozenset({"profile", "unsubscribe_url"})
"""Names every person has; the others (``traits.x``, ``interests[...]``, ``offer.x``) need a fallback."""
MAX_SOURCE = 50_000
MAX_OUTPUT = 200_000
MAX_POWER = 1_000
MAX_REPEAT = 10_000
HTML_FIELDS = frozenset({"html"})


class _Sandbox(SandboxedEnvironment):
    """The sandbox with bounded ``**`` and ``*`` (a one-line template cannot make a gigabyte)."""

    intercepted_binops = frozenset({"**", "*"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > MAX_POWER:
                raise SecurityError(f"exponent larger than {MAX_POWER}")
            return left ** right
        if isinstance(left, str | list | tuple) or isinstance(right, str | list | tuple):
            n = right if isinstance(left, str | list | tuple) else left
            if isinstance(n, int) and n > MAX_REPEAT:
                raise SecurityError(f"repetition larger than {MAX_REPEAT}")
        return left * right


_ENVS: dict[bool, SandboxedEnvironment] = {}


def environment(html: bool) -> SandboxedEnvironment:
    """The sandboxed environment for an HTML field (autoescaped) or a text field."""
    env = _ENVS.get(html)
    if env is None:
        env = _ENVS[html] = _Sandbox(undefined=StrictUndefined, autoescape=html, keep_trailing_newline=True)
    return env


@dataclass(frozen=True, slots=True)
class Problem:
    """A template problem: ``reason`` at ``line``/``column`` (1-based) of the field's source."""

    reason: str
    line: int
    column: int
    width: int = 1
    hint: str = ""

    def excerpt(self, source: str) -> str:
        """The source line with the problem underlined."""
        lines = source.split("\n")
        text = lines[self.line - 1] if 0 < self.line <= len(lines) else ""
        gutter = " " * len(str(self.line))
        caret = " " * (self.column - 1) + "^" * max(1, self.width) + (f" {self.hint}" if self.hint else "")
        return "\n".join([f"{gutter}--> line {self.line}, column {self.column}", f"{gutter} |",
                          f"{self.line} | {text}", f"{gutter} | {caret}"])


def check(source: str, defaults: Mapping[str, Any] | None = None, html: bool = False) -> list[Problem]:
    """Every problem of one field's template: syntax, unknown names, unsafe attributes, references to values a
    person may lack without a fallback. Empty: the template compiles and always renders."""
    if len(source) > MAX_SOURCE:
        return [Problem(f"the template is longer than {MAX_SOURCE} characters", 1, 1)]
    env = environment(html)
    try:
        tree = env.parse(source)
        env.compile(tree)
    except TemplateSyntaxError as e:
        line = e.lineno or 1
        column, width = _tag_at(source, line)
        return [Problem(f"template syntax: {e.message}", line, column, width)]
    declared = {str(k) for k in (defaults or {})}
    problems: list[Problem] = []
    local = _locals(tree)
    for name in sorted({n.name for n in tree.find_all(nodes.Name) if n.ctx == "load"} - set(ROOTS) - local):
        node = next(n for n in tree.find_all(nodes.Name) if n.name == name)
        line, column = _position(source, node.lineno, name)
        hint = did_you_mean(name, ROOTS)
        problems.append(Problem(f"unknown name {name!r} (a template sees {', '.join(ROOTS)})", line, column,
                                len(name), hint))
    for stmt in tree.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        word = {"Include": "include", "Import": "import", "FromImport": "from", "Extends": "extends"}[type(stmt).__name__]
        line, column = _position(source, stmt.lineno, word)
        problems.append(Problem(f"{word} is not available: a message is one template", line, column, len(word)))
    for attr in tree.find_all(nodes.Getattr):
        if attr.attr.startswith("_"):
            line, column = _position(source, attr.lineno, attr.attr)
            problems.append(Problem(f"attribute {attr.attr!r} is not allowed (names starting with '_' are "
                                    "refused by the sandbox)", line, column, len(attr.attr)))
    for ref, lineno in _unguarded(tree, local):
        if ref in declared:
            continue
        line, column, width = _ref_position(source, lineno, ref)
        problems.append(Problem(
            f"{ref} may be missing for some people and has no default", line, column, width,
            f'declare "defaults": {{"{ref}": "…"}} in the message or write {{{{ {ref} | default("…") }}}}'))
    return problems


def _locals(tree: nodes.Template) -> set[str]:
    """Names the template assigns itself (``{% set %}``, loop targets, macro arguments)."""
    out: set[str] = set()
    for n in tree.find_all(nodes.Name):
        if n.ctx in ("store", "param"):
            out.add(n.name)
    out.add("loop")
    return out


def _reference(node: nodes.Node) -> str | None:
    """``traits.firstName`` for ``traits.firstName`` / ``traits["firstName"]`` (a root not shadowed), else None."""
    if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name):
        return f"{node.node.name}.{node.attr}"
    if (isinstance(node, nodes.Getitem) and isinstance(node.node, nodes.Name)
            and isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str)):
        return f"{node.node.name}.{node.arg.value}"
    return None


def _unguarded(tree: nodes.Node, local: set[str]) -> Iterator[tuple[str, int]]:
    """References to values a person may lack that have no ``default`` filter and no ``is defined`` guard."""

    def walk(node: nodes.Node, guarded: frozenset[str], parent: nodes.Node | None) -> Iterator[tuple[str, int]]:
        if isinstance(node, nodes.Filter) and node.name in ("default", "d") and node.node is not None:
            ref = _reference(node.node)
            if ref is not None:
                for arg in node.args:
                    yield from walk(arg, guarded, node)
                return
        if (isinstance(node, nodes.Test) and node.name in ("defined", "undefined")
                and _reference(node.node) is not None):
            return
        if isinstance(node, nodes.If):
            guards = frozenset(_defined_in(node.test))
            yield from walk(node.test, guarded, node)
            for child in node.body:
                yield from walk(child, guarded | guards, node)
            for child in (*node.elif_, *node.else_):
                yield from walk(child, guarded, node)
            return
        if isinstance(node, nodes.CondExpr):
            guards = frozenset(_defined_in(node.test))
            yield from walk(node.test, guarded, node)
            yield from walk(node.expr1, guarded | guards, node)
            if node.expr2 is not None:
                yield from walk(node.expr2, guarded, node)
            return
        ref = _reference(node)
        if ref is not None and not isinstance(parent, nodes.Call):
            root = ref.split(".", 1)[0]
            if root in ROOTS and root not in ALWAYS and root not in local and ref not in guarded:
                yield ref, node.lineno
            return
        for child in node.iter_child_nodes():
            yield from walk(child, guarded, node)

    yield from walk(tree, frozenset(), None)


def _defined_in(test: nodes.Node) -> Iterator[str]:
    for t in test.find_all(nodes.Test):
        if t.name == "defined":
            ref = _reference(t.node)
            if ref is not None:
                yield ref
    if isinstance(test, nodes.Test) and test.name == "defined":
        ref = _reference(test.node)
        if ref is not None:
            yield ref


def _position(source: str, lineno: int, word: str) -> tuple[int, int]:
    """The line and column of ``word`` on ``lineno`` (Jinja's nodes know their line only)."""
    lines = source.split("\n")
    text = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
    m = re.search(rf"(?<![\w.]){re.escape(word)}\b", text) or re.search(re.escape(word), text)
    return lineno, (m.start() + 1 if m else 1)


def _ref_position(source: str, lineno: int, ref: str) -> tuple[int, int, int]:
    """Where ``traits.firstName`` (or ``traits["firstName"]``) is written on ``lineno``: line, column, width."""
    root, _, attr = ref.partition(".")
    lines = source.split("\n")
    text = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
    m = re.search(rf"(?<![\w.]){re.escape(root)}\s*(\.\s*{re.escape(attr)}\b|\[\s*[\"']{re.escape(attr)}[\"']\s*\])",
                  text)
    if m is None:
        line, column = _position(source, lineno, attr)
        return line, column, len(attr)
    return lineno, m.start() + 1, m.end() - m.start()


def _tag_at(source: str, lineno: int) -> tuple[int, int]:
    """The column and width of the last tag opened on ``lineno`` (where a syntax error sits)."""
    lines = source.split("\n")
    text = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
    opens = [m.start() for m in re.finditer(r"\{\{|\{%|\{#", text)]
    if not opens:
        return 1, max(1, len(text))
    start = opens[-1]
    close = re.search(r"\}\}|%\}|#\}", text[start:])
    return start + 1, (close.end() if close else len(text) - start)


# ---- rendering
@dataclass(frozen=True, slots=True)
class Person:
    """What a template is rendered with for one person."""

    profile_id: str
    traits: Mapping[str, Any] = field(default_factory=dict)
    interests: Mapping[str, float] = field(default_factory=dict)
    offer: Mapping[str, Any] | None = None
    unsubscribe_url: str = ""


@dataclass(frozen=True, slots=True)
class Skip:
    """A person the message could not be rendered for, and why (``template_failed`` + detail)."""

    code: str
    reason: str


def _context(person: Person, defaults: Mapping[str, str]) -> dict[str, Any]:
    traits = {k: v for k, v in person.traits.items() if v is not None and v != ""}
    interests = dict(person.interests)
    offer = {k: v for k, v in (person.offer or {}).items() if v is not None and v != ""}
    parts: dict[str, dict[str, Any]] = {"traits": traits, "interests": interests, "offer": offer}
    for key, value in defaults.items():
        root, _, rest = key.partition(".")
        if root in parts and rest:
            parts[root].setdefault(rest, value)
    return {**parts, "profile": person.profile_id, "unsubscribe_url": person.unsubscribe_url}


@functools.lru_cache(maxsize=4096)
def compiled(source: str, html: bool) -> Template:
    """A field's template compiled once (a campaign renders the same few sources for every person); raises
    Jinja's ``TemplateSyntaxError`` for a source that was never validated."""
    return environment(html).from_string(source)


def render(fields: Mapping[str, str], defaults: Mapping[str, str], person: Person) -> dict[str, str] | Skip:
    """Every field rendered for ``person``, or a :class:`Skip` saying why not (never raises for a template's
    fault: a missing value without a default, a sandbox refusal, an error in an expression, an oversize result)."""
    context = _context(person, defaults)
    out: dict[str, str] = {}
    for name, source in fields.items():
        skip: Skip | None = None
        try:
            text = compiled(source, name in HTML_FIELDS).render(context)
        except SecurityError as e:
            skip = Skip("template_refused", f"{name}: {e}")
        except TemplateError as e:
            skip = Skip("template_failed", f"{name}: {e}")
        except (ArithmeticError, ValueError, TypeError, LookupError, OverflowError, RecursionError) as e:
            skip = Skip("template_failed", f"{name}: {type(e).__name__}: {e}")
        else:
            if len(text) > MAX_OUTPUT:
                skip = Skip("template_failed", f"{name}: rendered text longer than {MAX_OUTPUT} characters")
        if skip is not None:
            logger.debug("message not rendered for %s: %s", person.profile_id, skip.reason)
            return skip
        out[name] = text
    return out
