"""Campaign documents: JSON and YAML read the same, every problem is reported at its JSON path."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from takt.campaigns.document import Context, duration, format_errors, parse_document
from takt.campaigns.model import Branch, Send, Wait, WaitUntil
from takt.errors import TaktError
from takt.segments.vocabulary import Vocabulary

YAML = """
name: ny-city-break
intent: marketing
audience: interest("destination:new-york") > 1
trigger: {on: schedule, cron: "0 9 * * MON", timezone: Europe/Berlin}
channels: [email, push]
message:
  email:
    subject: "New York, {{ traits.firstName }}?"
    text: "Hi {{ traits.firstName }}"
    defaults: {traits.firstName: there}
  push: {title: New York, body: "{{ offer.title | default('Fly') }}"}
holdout: 0.1
goal: {event: Order Completed, within: 14d}
priority: 70
steps:
  - send: {}
  - wait: 3d
  - wait_until: 'count(track "Email Clicked" in last 7d) > 0'
    timeout: 7d
  - branch:
      if: top_interest = "destination:new-york"
      then: [{send: {}}]
      else: [{exit_if: 'count(track "Order Completed" in last 14d) > 0'}]
"""


def base(**more: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"name": "c1", "intent": "marketing", "audience": 'interest("destination:new-york") > 1',
                         "trigger": {"on": "now"}, "channels": ["email"],
                         "message": {"email": {"subject": "Hello", "text": "Hi {{ unsubscribe_url }}"}}}
    d.update(more)
    return d


def problems(doc: Any, context: Context | None = None) -> dict[str, dict[str, Any]]:
    with pytest.raises(TaktError) as e:
        parse_document(doc, context)
    assert e.value.code == "invalid_campaign" and e.value.status == 422
    return {p["field"]: p for p in e.value.errors}


def test_yaml_and_json_give_the_same_campaign() -> None:
    from_yaml = parse_document(YAML)
    from_json = parse_document(json.dumps(from_yaml.document))
    assert from_yaml == from_json
    c = from_yaml
    assert c.trigger.on == "schedule" and c.trigger.timezone == "Europe/Berlin"  # YAML's `on:` stays a key
    assert c.channels == ("email", "push") and c.priority == 70 and c.holdout == 0.1
    assert c.goal is not None and c.goal.within == timedelta(days=14)
    assert isinstance(c.steps[0], Send) and c.steps[1] == Wait(timedelta(days=3))
    assert isinstance(c.steps[2], WaitUntil) and c.steps[2].timeout == timedelta(days=7)
    assert isinstance(c.steps[3], Branch) and len(c.steps[3].then) == 1
    assert c.message["email"].defaults == {"traits.firstName": "there"}


def test_every_problem_points_at_its_field() -> None:
    doc = base(intent="marketting", channels=["emial", "email"], holdout=0.7, priority=101, extra=1,
               steps=[{"send": {}}, {"wait": "3x"},
                      {"branch": {"if": "top_interest = 1", "then": [{"wiat": "3d"}, {"wait": "2d"}]}},
                      {"wait_until": "first_seen within 3d"}])
    p = problems(doc)
    assert p["intent"]["hint"] == "did you mean 'marketing'?"
    assert p["channels[0]"]["hint"] == "did you mean 'email'?"
    assert "extra" in p and "holdout" in p and "priority" in p
    assert "duration" in p["steps[1].wait"]["reason"]
    assert p["steps[2].branch.if"]["line"] == 1 and p["steps[2].branch.if"]["column"] == 1
    assert "did you mean 'wait'" in p["steps[2].branch.then[0]"]["hint"]
    assert "steps[3].timeout" in p


def test_segment_expressions_carry_the_parsers_position_and_highlight() -> None:
    p = problems(base(audience='interest("destination:new-york") > 1 and\n  interst("x") > 0'))
    err = p["audience"]
    assert (err["line"], err["column"]) == (2, 3)
    assert "did you mean 'interest'" in err["excerpt"] and "^^^^^^^" in err["excerpt"]


def test_expressions_are_checked_against_the_workspace_vocabulary_and_segments() -> None:
    ctx = Context(vocabulary=Vocabulary(interests=frozenset({"destination:new-york"}),
                                        events=frozenset({"Order Completed"})), segments=frozenset({"vip"}))
    p = problems(base(audience='interest("destination:new-yrok") > 1', goal={"event": "Order Complete",
                                                                             "within": "14d"},
                      trigger={"on": "segment_entered", "segment": "vpi"}), ctx)
    assert "destination:new-york" in p["audience"]["excerpt"]
    assert "Order Completed" in p["goal.event"]["hint"]
    assert "'vip'" in p["trigger.segment"]["hint"]
    assert "'vip'" in problems(base(audience={"segment": "vipp"}), ctx)["audience.segment"]["hint"]
    assert parse_document(base(audience={"segment": "vip"}), ctx).audience.segment == "vip"


def test_schedule_needs_a_valid_cron_and_an_iana_zone() -> None:
    p = problems(base(trigger={"on": "schedule", "cron": "0 9 * * XYZ", "timezone": "Europe/Berln"}))
    assert "cron" in p["trigger.cron"]["reason"]
    assert "Europe/Berlin" in p["trigger.timezone"]["hint"]
    assert "trigger.cron" in problems(base(trigger={"on": "schedule", "timezone": "UTC"}))
    assert "did you mean 'event'" in problems(base(trigger={"on": "evnt"}))["trigger.on"]["hint"]
    assert "trigger.segment" in problems(base(trigger={"on": "now", "segment": "x"}))  # not a key of `now`


def test_every_channel_needs_a_message_with_the_required_fields() -> None:
    p = problems(base(channels=["email", "sms"], message={"email": {"subject": "x"}, "push": {"title": "t",
                                                                                             "body": "b"}}))
    assert p["message.email.text"]["reason"] == "is required (an email message needs subject and text)"
    assert "not in channels" in p["message.push"]["reason"]
    assert "'sms'" in p["message"]["reason"]
    ok = parse_document(base(channels=["email", "sms"], message={"email": {"subject": "s", "text": "t"}},
                             steps=[{"send": {"message": {"sms": {"text": "hi"}}}}]))
    step = ok.steps[0]
    assert isinstance(step, Send) and step.message is not None and "sms" in step.message
    assert "steps[0].send" in problems(base(channels=["email", "sms"], steps=[{"send": {}}]))


def test_templates_that_could_render_an_empty_greeting_are_refused_at_their_line_and_column() -> None:
    p = problems(base(message={"email": {"subject": "Hi", "text": "Hello\n  {{ traits.firstName }}!"}}))
    err = p["message.email.text"]
    assert (err["line"], err["column"]) == (2, 6) and "default" in err["reason"]
    syntax = problems(base(message={"email": {"subject": "Hi {{ traits.firstName ", "text": "t"}}))
    assert "syntax" in syntax["message.email.subject"]["reason"]
    fixed = base(message={"email": {"subject": "Hi", "text": "Hello {{ traits.firstName }}!",
                                    "defaults": {"traits.firstName": "there"}}})
    assert parse_document(fixed).message["email"].defaults == {"traits.firstName": "there"}


def test_a_journey_needs_a_send_and_bounded_nesting() -> None:
    assert "steps" in problems(base(steps=[{"wait": "3d"}]))
    deep: list[Any] = [{"send": {}}]
    for _ in range(12):
        deep = [{"branch": {"if": "first_seen within 3d", "then": deep}}]
    assert any("deeper" in v["reason"] for v in problems(base(steps=deep)).values())


def test_bad_text_is_one_positioned_error() -> None:
    p = problems('{"name": "x",\n  "intent": }')
    assert p["$"]["line"] == 2 and "JSON" in p["$"]["reason"]
    assert "aliases" in problems("a: &x [1]\nb: *x\n")["$"]["reason"]
    assert "$" in problems("[1, 2]")


@pytest.mark.parametrize(("text", "expected"), [("3d", timedelta(days=3)), ("12h", timedelta(hours=12)),
                                                 ("30m", timedelta(minutes=30)), ("2w", timedelta(weeks=2)),
                                                 ("0d", None), ("3 days", None), ("-1d", None), ("", None)])
def test_durations(text: str, expected: timedelta | None) -> None:
    assert duration(text) == expected


def test_format_errors_shows_the_underlined_line() -> None:
    with pytest.raises(TaktError) as e:
        parse_document(base(audience='interst("x") > 0'))
    out = format_errors(e.value)
    assert "audience: unknown function 'interst'" in out and "^^^^^^^" in out


def test_what_yaml_can_make_is_a_problem_not_a_crash() -> None:
    yaml_doc = ("name: c1\nintent: marketing\naudience: first_seen within 3d\ntrigger: {on: now}\nchannels: [email]\n"
                "message: {email: {subject: s, text: t, defaults: {2026-01-01: x}}}\n"
                "steps: [{wait: !!binary aGVsbG8=}, {send: {}}, {wait: 2026-01-01}]\n")
    p = problems(yaml_doc)
    assert {"steps[0].wait", "steps[2].wait", 'message.email.defaults["2026-01-01"]'} <= set(p)
    assert "$" in problems("[" * 200_000 + "]" * 200_000)
    assert "$" in problems("a:\n" + "".join("  " * i + "- \n" for i in range(1, 3000)))


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                 max_size=4), max_leaves=20)
_fields = st.sampled_from(["name", "intent", "audience", "trigger", "channels", "message", "holdout", "goal",
                           "priority", "steps", "chanels"])


_step_values = st.sampled_from(["3d", "12h", "first_seen within 3d", "top_interest = 1", "x", ""]) | _json
_steps = st.recursive(
    st.dictionaries(st.sampled_from(["send", "wait", "wait_until", "exit_if", "timeout"]), _step_values, max_size=2),
    lambda inner: st.builds(lambda c, t, e: {"branch": {"if": c, "then": t, "else": e}}, _step_values,
                            st.lists(inner, max_size=3), st.lists(inner, max_size=2)), max_leaves=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.dictionaries(_fields, _json, max_size=4), steps=st.none() | st.lists(_steps, max_size=4))
def test_any_document_is_a_campaign_or_one_invalid_campaign_error(changes: dict[str, Any],
                                                                 steps: list[Any] | None) -> None:
    """Whatever the fields hold, the answer is a campaign or one 422 whose every problem names a field."""
    if steps is not None:
        changes["steps"] = steps
    try:
        c = parse_document(base(**changes))
    except TaktError as e:
        assert e.code == "invalid_campaign" and e.status == 422 and e.errors
        assert all(isinstance(p["field"], str) and p["reason"] for p in e.errors)
    else:
        assert c.name and c.channels and set(c.channels) <= set(c.message) | {
            ch for s in c.steps if isinstance(s, Send) and s.message for ch in s.message}
