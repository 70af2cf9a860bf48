"""A campaign document (JSON or YAML, the same through the API, the CLI and files) → a checked :class:`Campaign`.

Everything is validated before anything is stored, and every problem is reported at once, each pointing at its
field by JSON path (``steps[2].branch.then[0].wait``): one :class:`~takt.errors.TaktError` (422, code
``invalid_campaign``) whose ``errors`` list holds ``{"field", "reason"}`` and, where they apply, ``hint`` ("did
you mean"), ``line``/``column`` and ``excerpt`` (the source line with the problem underlined) for segment
expressions (``audience``, ``trigger.where``, ``wait_until``, ``branch.if``, ``exit_if``: the segment parser's
own errors) and templates (:mod:`takt.campaigns.templates`).

What is checked (the reference is docs/campaigns.md): the fields and their types; ``name`` as a segment name;
``intent`` (:data:`~takt.policy.vocab.MESSAGE_PURPOSES`); ``channels`` (:data:`~takt.policy.vocab.CHANNELS`,
ranked, no repeats); a message for every channel, with the fields :data:`~takt.campaigns.model.MESSAGE_FIELDS`
requires, each template compiling and never rendering a missing value; the trigger (cron and IANA time zone
for ``schedule``); durations (``"3d"``, ``"12h"``); ``holdout`` in [0, 0.5]; ``priority`` 0–100; the steps. With
a workspace (:class:`Context`), expressions are checked against its vocabulary and named segments must exist.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from takt.campaigns import templates
from takt.campaigns.model import (
    MESSAGE_FIELDS,
    TRIGGERS,
    Audience,
    Branch,
    Campaign,
    ExitIf,
    Goal,
    Send,
    Step,
    Template,
    Trigger,
    Wait,
    WaitUntil,
)
from takt.errors import TaktError
from takt.policy.vocab import CHANNELS, MESSAGE_PURPOSES
from takt.segments.errors import SegmentError, did_you_mean
from takt.segments.parser import parse
from takt.segments.vocabulary import Vocabulary
from takt.text import article

MAX_DOCUMENT = 500_000
"""Bytes of a document."""
MAX_STEPS = 200
"""Steps in a campaign, counting those inside branches."""
MAX_DEPTH = 10
"""Branches inside branches."""
MAX_DURATION = timedelta(days=366)
MAX_HOLDOUT = 0.5
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
DURATION_RE = re.compile(r"([1-9][0-9]{0,5})(s|m|h|d|w)")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
OPTIONAL_FIELDS = {"email": frozenset({"html"})}
"""Template fields a channel's message may leave out (the others in MESSAGE_FIELDS are required)."""

TOP = ("name", "intent", "audience", "trigger", "channels", "message", "holdout", "goal", "priority", "steps",
       "description")
REQUIRED = ("name", "intent", "audience", "trigger", "channels")
TRIGGER_KEYS: Mapping[str, tuple[str, ...]] = {
    "now": ("on",), "schedule": ("on", "cron", "timezone"), "segment_entered": ("on", "segment"),
    "event": ("on", "event", "where"),
}
STEP_KINDS = ("send", "wait", "wait_until", "branch", "exit_if")


@dataclass(frozen=True)
class Context:
    """What a document is checked against beyond itself: the workspace's vocabulary (trait, event, interest …
    names, for expressions) and its stored segments (for ``{"segment": name}``, ``segment_entered`` and
    ``in segment(…)``). ``None`` leaves that part unchecked (``takt campaign validate`` offline)."""

    vocabulary: Vocabulary | None = None
    segments: Collection[str] | None = None


def workspace_context(storage: Any, runner: Any | None, settings: Any = None) -> Context:
    """The context of a workspace: the names its profiles have (when ``runner`` projects them and there are
    any) and its stored segments."""
    from takt.projections.tables import workspace_vocabulary
    from takt.segments.store import segment_store

    vocab = workspace_vocabulary(storage, runner, settings) if runner is not None else None
    return Context(vocabulary=vocab, segments=frozenset(v.name for v in segment_store(storage).list()))


def load(source: str | bytes) -> Any:
    """The document's data from JSON or YAML text (YAML without aliases: a document cannot multiply itself)."""
    raw = source.encode() if isinstance(source, str) else source
    if len(raw) > MAX_DOCUMENT:
        raise _invalid([{"field": "$", "reason": f"the document is larger than {MAX_DOCUMENT} bytes"}])
    text = raw.decode("utf-8", errors="replace")
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            return _invalid_text(f"invalid JSON: {e.msg}", text, e.lineno, e.colno)
        except RecursionError:
            raise _invalid([{"field": "$", "reason": "the document nests too deeply"}]) from None
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader without aliases
    except RecursionError:
        raise _invalid([{"field": "$", "reason": "the document nests too deeply"}]) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        return _invalid_text(f"invalid YAML: {e.problem or e}", text, line, column)
    except yaml.YAMLError as e:
        raise _invalid([{"field": "$", "reason": f"invalid YAML: {e}"}]) from None


class _NoAliasLoader(yaml.SafeLoader):
    """YAML's safe loader without aliases, where only ``true``/``false`` are booleans (YAML 1.1 would read the
    trigger's ``on:`` key, and ``yes``/``no``/``off``, as booleans)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a campaign document",
                                              event.start_mark)
        return super().compose_node(parent, index)


_NoAliasLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_NoAliasLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                     list("tTfF"))


def _invalid_text(reason: str, text: str, line: int, column: int) -> Any:
    problem = templates.Problem(reason, line, column)
    raise _invalid([{"field": "$", "reason": reason, "line": line, "column": column,
                     "excerpt": problem.excerpt(text)}])


def _invalid(errors: list[dict[str, Any]]) -> TaktError:
    n = len(errors)
    return TaktError(message=f"invalid campaign: {n} problem{'s' if n != 1 else ''}", code="invalid_campaign",
                     status=422, errors=errors)


def parse_document(source: str | bytes | Mapping[str, Any], context: Context | None = None,
                   version: int = 1) -> Campaign:
    """The checked campaign of a document (text or already-loaded data); raises one ``invalid_campaign`` error
    listing every problem."""
    data = load(source) if isinstance(source, str | bytes) else source
    checker = _Checker(context or Context())
    campaign = checker.campaign(data, version)
    if checker.problems or campaign is None:
        raise _invalid(checker.problems)
    return campaign


def duration(value: Any) -> timedelta | None:
    """``"3d"`` → 3 days (units s, m, h, d, w); ``None`` when it is not such a text."""
    if not isinstance(value, str):
        return None
    m = DURATION_RE.fullmatch(value.strip())
    if m is None:
        return None
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def _shown(value: Any) -> str:
    """A value as the document wrote it, shortened (any value YAML can make: bytes, dates, sets …)."""
    try:
        return json.dumps(value, default=str, ensure_ascii=False)[:40]
    except (TypeError, ValueError, RecursionError):
        return _kind(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


@dataclass
class _Checker:
    context: Context
    problems: list[dict[str, Any]] = field(default_factory=list)
    steps_seen: int = 0

    def problem(self, path: str, reason: str, hint: str = "", **extra: Any) -> None:
        p: dict[str, Any] = {"field": path, "reason": reason}
        if hint:
            p["hint"] = hint
        p.update(extra)
        self.problems.append(p)

    def keys(self, path: str, obj: Mapping[str, Any], allowed: Collection[str]) -> None:
        for k in obj:
            if k not in allowed:
                key = str(k)
                self.problem(_join(path, key), f"unknown field {key!r} (expected {', '.join(allowed)})",
                             did_you_mean(key, allowed))

    def obj(self, path: str, value: Any) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.problem(path, f"must be an object, not {_kind(value)}")
            return None
        return value

    def text(self, path: str, value: Any) -> str | None:
        if not isinstance(value, str) or not value.strip():
            self.problem(path, "must be a non-empty text" + ("" if isinstance(value, str) else f", not {_kind(value)}"))
            return None
        return value

    def span(self, path: str, value: Any, minimum: timedelta = timedelta(seconds=1)) -> timedelta | None:
        d = duration(value)
        if d is None:
            self.problem(path, f"must be a duration such as \"3d\", \"12h\" or \"30m\", not {_shown(value)}",
                         "units: s, m, h, d, w")
            return None
        if d < minimum or d > MAX_DURATION:
            self.problem(path, f"must be between {_show(minimum)} and {_show(MAX_DURATION)}")
            return None
        return d

    def expression(self, path: str, value: Any) -> str | None:
        source = self.text(path, value)
        if source is None:
            return None
        vocab = self.context.vocabulary
        if self.context.segments is not None:
            base = {f: getattr(vocab, f) for f in Vocabulary.__dataclass_fields__} if vocab is not None else {}
            vocab = Vocabulary(**{**base, "segments": frozenset(self.context.segments)})
        try:
            parse(source, vocabulary=vocab)
        except SegmentError as e:
            extra: dict[str, Any] = {}
            if e.line is not None:
                extra.update(line=e.line, column=e.column, excerpt="\n".join(e.message.split("\n")[1:]))
            self.problem(path, e.reason, e.hint, **extra)
            return None
        return source

    def segment(self, path: str, value: Any) -> str | None:
        name = self.text(path, value)
        if name is None:
            return None
        known = self.context.segments
        if known is not None and name not in known:
            self.problem(path, f"no stored segment {name!r}", did_you_mean(name, known))
        return name

    # ---- the document
    def campaign(self, data: Any, version: int) -> Campaign | None:
        doc = self.obj("$", data)
        if doc is None:
            return None
        self.keys("", doc, TOP)
        for k in REQUIRED:
            if k not in doc:
                self.problem(k, "is required")
        name = doc.get("name")
        if "name" in doc and (not isinstance(name, str) or not NAME_RE.fullmatch(name)):
            self.problem("name", "must be 1 to 64 letters, digits, '_', '-' or '.', starting with a letter or digit "
                         "(e.g. 'ny-city-break')")
        intent = doc.get("intent")
        if "intent" in doc and intent not in MESSAGE_PURPOSES:
            self.problem("intent", f"must be one of {', '.join(MESSAGE_PURPOSES)}",
                         did_you_mean(str(intent), MESSAGE_PURPOSES))
        if "description" in doc and not isinstance(doc["description"], str):
            self.problem("description", f"must be a text, not {_kind(doc['description'])}")
        audience = self.audience(doc["audience"]) if "audience" in doc else None
        trigger = self.trigger(doc["trigger"]) if "trigger" in doc else None
        channels = self.channels(doc["channels"]) if "channels" in doc else ()
        message: dict[str, Template] = {}
        if "message" in doc:
            message = self.message("message", doc["message"], channels)
        holdout = self.holdout(doc.get("holdout", 0.0))
        priority = self.priority(doc.get("priority", 50))
        goal = self.goal(doc["goal"]) if "goal" in doc else None
        steps: tuple[Step, ...] = (Send(),)
        if "steps" in doc:
            steps = self.steps("steps", doc["steps"], channels, message, 0)
            if not any(isinstance(s, Send) for s in _flat(steps)):
                self.problem("steps", "a campaign needs at least one send step", 'add {"send": {}}')
        elif "message" not in doc:
            self.problem("message", "is required (the message for each channel) when there are no steps")
        else:
            self._covers("message", channels, message)
        if self.problems or audience is None or trigger is None or not isinstance(name, str):
            return None
        return Campaign(name=name, intent=str(intent), audience=audience, trigger=trigger, channels=channels,
                        message=message, holdout=holdout, goal=goal, priority=priority, steps=steps, version=version,
                        document=doc)

    def audience(self, value: Any) -> Audience | None:
        if isinstance(value, dict):
            self.keys("audience", value, ("segment",))
            if "segment" not in value:
                self.problem("audience.segment", "is required (or give audience as a segment expression)")
                return None
            name = self.segment("audience.segment", value["segment"])
            return Audience(segment=name) if name is not None else None
        if isinstance(value, str):
            expr = self.expression("audience", value)
            return Audience(expression=expr) if expr is not None else None
        self.problem("audience", f"must be a segment expression or {{\"segment\": name}}, not {_kind(value)}")
        return None

    def trigger(self, value: Any) -> Trigger | None:
        obj = self.obj("trigger", value)
        if obj is None:
            return None
        on = obj.get("on")
        if on not in TRIGGERS:
            self.problem("trigger.on", f"must be one of {', '.join(TRIGGERS)}" if "on" in obj else "is required",
                         did_you_mean(str(on), TRIGGERS) if isinstance(on, str) else "")
            return None
        self.keys("trigger", obj, TRIGGER_KEYS[on])
        if on == "schedule":
            cron = self.text("trigger.cron", obj.get("cron"))
            tz = self.text("trigger.timezone", obj.get("timezone"))
            if cron is not None:
                from croniter import croniter

                if not croniter.is_valid(cron):
                    self.problem("trigger.cron", f"not a cron expression: {cron[:60]!r}",
                                 'five fields: minute hour day month weekday, e.g. "0 9 * * MON"')
            if tz is not None:
                try:
                    ZoneInfo(tz)
                except (ZoneInfoNotFoundError, ValueError):
                    from zoneinfo import available_timezones

                    self.problem("trigger.timezone", f"not an IANA time zone: {tz[:60]!r}",
                                 did_you_mean(tz, available_timezones()) or 'e.g. "Europe/Berlin"')
            return Trigger(on="schedule", cron=cron, timezone=tz)
        if on == "segment_entered":
            return Trigger(on="segment_entered", segment=self.segment("trigger.segment", obj.get("segment")))
        if on == "event":
            event = self.text("trigger.event", obj.get("event"))
            where = self.expression("trigger.where", obj["where"]) if "where" in obj else None
            return Trigger(on="event", event=event, where=where)
        return Trigger(on="now")

    def channels(self, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            self.problem("channels", "must be a non-empty list of channels, best first "
                         f"({', '.join(CHANNELS)})")
            return ()
        out: list[str] = []
        for i, c in enumerate(value):
            path = f"channels[{i}]"
            if c not in CHANNELS:
                self.problem(path, f"unknown channel {str(c)[:40]!r} (expected {', '.join(CHANNELS)})",
                             did_you_mean(str(c), CHANNELS))
            elif c in out:
                self.problem(path, f"channel {c!r} is listed twice")
            else:
                out.append(c)
        return tuple(out)

    def message(self, path: str, value: Any, channels: tuple[str, ...]) -> dict[str, Template]:
        obj = self.obj(path, value)
        if obj is None:
            return {}
        out: dict[str, Template] = {}
        for channel, spec in obj.items():
            cpath = _join(path, str(channel))
            if channel not in MESSAGE_FIELDS:
                self.problem(cpath, f"unknown channel {str(channel)[:40]!r}", did_you_mean(str(channel), CHANNELS))
                continue
            if channels and channel not in channels:
                self.problem(cpath, f"a message for {channel!r}, which is not in channels",
                             f"add {channel!r} to channels or remove this message")
                continue
            t = self.template(cpath, channel, spec)
            if t is not None:
                out[channel] = t
        return out

    def template(self, path: str, channel: str, value: Any) -> Template | None:
        obj = self.obj(path, value)
        if obj is None:
            return None
        names = MESSAGE_FIELDS[channel]
        self.keys(path, obj, (*names, "defaults"))
        defaults: dict[str, str] = {}
        if "defaults" in obj:
            d = self.obj(_join(path, "defaults"), obj["defaults"])
            for k, v in (d or {}).items():
                kpath = f"{_join(path, 'defaults')}[{json.dumps(str(k))}]"
                root = str(k).split(".", 1)[0]
                if root not in ("traits", "interests", "offer") or "." not in str(k):
                    self.problem(kpath, "a default names a value as traits.NAME, interests.NAME or offer.NAME",
                                 did_you_mean(root, ("traits", "interests", "offer")))
                elif not isinstance(v, str | int | float) or isinstance(v, bool):
                    self.problem(kpath, f"must be a text or a number, not {_kind(v)}")
                else:
                    defaults[str(k)] = str(v)
        fields: dict[str, str] = {}
        for f in names:
            fpath = _join(path, f)
            if f not in obj:
                if f not in OPTIONAL_FIELDS.get(channel, frozenset()):
                    needed = [n for n in names if n not in OPTIONAL_FIELDS.get(channel, frozenset())]
                    self.problem(fpath, f"is required ({article(channel)} message needs {' and '.join(needed)})")
                continue
            source = obj[f]
            if not isinstance(source, str):
                self.problem(fpath, f"must be a text (a template), not {_kind(source)}")
                continue
            for p in templates.check(source, defaults, html=f in templates.HTML_FIELDS):
                self.problem(fpath, p.reason, p.hint, line=p.line, column=p.column, excerpt=p.excerpt(source))
            fields[f] = source
        return Template(fields=fields, defaults=defaults)

    def _covers(self, path: str, channels: tuple[str, ...], message: Mapping[str, Template]) -> None:
        missing = [c for c in channels if c not in message]
        if missing:
            self.problem(path, f"no message for {', '.join(repr(c) for c in missing)}: every channel listed needs "
                         "one")

    def holdout(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_HOLDOUT:
            self.problem("holdout", f"must be a number from 0 to {MAX_HOLDOUT} (the share of the audience kept out)")
            return 0.0
        return float(value)

    def priority(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            self.problem("priority", "must be a whole number from 0 to 100 (higher wins a shared contact budget)")
            return 50
        return value

    def goal(self, value: Any) -> Goal | None:
        obj = self.obj("goal", value)
        if obj is None:
            return None
        self.keys("goal", obj, ("event", "within"))
        event = self.text("goal.event", obj.get("event"))
        vocab = self.context.vocabulary
        if event is not None and vocab is not None and vocab.events is not None and event not in vocab.events:
            self.problem("goal.event", f"no event named {event!r} in this workspace", did_you_mean(event, vocab.events))
        within = self.span("goal.within", obj.get("within"))
        if event is None or within is None:
            return None
        return Goal(event=event, within=within)

    def steps(self, path: str, value: Any, channels: tuple[str, ...], message: Mapping[str, Template],
              depth: int) -> tuple[Step, ...]:
        if not isinstance(value, list) or (depth == 0 and not value):
            self.problem(path, "must be a " + ("non-empty " if depth == 0 else "") + "list of steps")
            return ()
        if depth > MAX_DEPTH:
            self.problem(path, f"branches nest deeper than {MAX_DEPTH} levels")
            return ()
        out: list[Step] = []
        for i, item in enumerate(value):
            self.steps_seen += 1
            if self.steps_seen > MAX_STEPS:
                self.problem(path, f"more than {MAX_STEPS} steps")
                return tuple(out)
            step = self.step(f"{path}[{i}]", item, channels, message, depth)
            if step is not None:
                out.append(step)
        return tuple(out)

    def step(self, path: str, value: Any, channels: tuple[str, ...], message: Mapping[str, Template],
             depth: int) -> Step | None:
        obj = self.obj(path, value)
        if obj is None:
            return None
        kinds = [k for k in obj if k in STEP_KINDS]
        if len(kinds) != 1:
            unknown = [str(k) for k in obj if k not in STEP_KINDS and k != "timeout"]
            hint = did_you_mean(unknown[0], STEP_KINDS) if unknown else ""
            self.problem(path, f"a step is exactly one of {', '.join(STEP_KINDS)}"
                         + (f" (found {', '.join(kinds)})" if kinds else ""), hint)
            return None
        kind = kinds[0]
        self.keys(path, obj, (kind, "timeout") if kind == "wait_until" else (kind,))
        inner = _join(path, kind)
        if kind == "send":
            spec = self.obj(inner, obj[kind])
            if spec is None:
                return None
            self.keys(inner, spec, ("message",))
            override = self.message(_join(inner, "message"), spec["message"], channels) if "message" in spec else None
            self._covers(inner, channels, {**message, **(override or {})})
            return Send(message=override)
        if kind == "wait":
            d = self.span(inner, obj[kind])
            return Wait(d) if d is not None else None
        if kind == "wait_until":
            cond = self.expression(inner, obj[kind])
            if "timeout" not in obj:
                self.problem(_join(path, "timeout"), "is required with wait_until (how long to wait at most)")
                return None
            timeout = self.span(_join(path, "timeout"), obj["timeout"])
            return WaitUntil(cond, timeout) if cond is not None and timeout is not None else None
        if kind == "exit_if":
            cond = self.expression(inner, obj[kind])
            return ExitIf(cond) if cond is not None else None
        spec = self.obj(inner, obj[kind])
        if spec is None:
            return None
        self.keys(inner, spec, ("if", "then", "else"))
        if "if" not in spec:
            self.problem(_join(inner, "if"), "is required (a segment expression)")
        if "then" not in spec:
            self.problem(_join(inner, "then"), "is required (the steps when the condition holds)")
        cond = self.expression(_join(inner, "if"), spec["if"]) if "if" in spec else None
        then = self.steps(_join(inner, "then"), spec.get("then", []), channels, message, depth + 1)
        other = self.steps(_join(inner, "else"), spec.get("else", []), channels, message, depth + 1)
        return Branch(cond, then, other) if cond is not None else None


def _join(path: str, key: str) -> str:
    if not path or path == "$":
        return key
    return f"{path}.{key}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else f"{path}[{json.dumps(key)}]"


def _flat(steps: tuple[Step, ...]) -> list[Step]:
    out: list[Step] = []
    for s in steps:
        out.append(s)
        if isinstance(s, Branch):
            out += _flat(s.then) + _flat(s.otherwise)
    return out


def _show(d: timedelta) -> str:
    s = int(d.total_seconds())
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s % n == 0:
            return f"{s // n}{unit}"
    return f"{s}s"


def format_errors(e: TaktError) -> str:
    """An ``invalid_campaign`` error for a terminal: one block per problem, with the underlined source line."""
    lines = [f"error: {e.message}"]
    for p in e.errors:
        head = f"  {p.get('field', '$')}: {p.get('reason', '')}"
        if p.get("line") is not None and not p.get("excerpt"):
            head += f" (line {p['line']}, column {p.get('column')})"
        lines.append(head)
        if p.get("excerpt"):
            lines += ["    " + x for x in str(p["excerpt"]).split("\n")]
        elif p.get("hint"):
            lines.append(f"    = {p['hint']}")
    return "\n".join(lines)
