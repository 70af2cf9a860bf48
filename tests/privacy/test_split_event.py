"""Sealing splits each event into its readable skeleton and its sealed personal part, built straight from the
event (``split_event``): it must give exactly what splitting the full record gives, key order included, so the
stored bytes do not change."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from hypothesis import given
from hypothesis import strategies as st

from takt.events.model import TRUSTS, Event
from takt.privacy.crypto import split_event, split_record

_text = st.text(max_size=8)
_opt = st.none() | _text
_map = st.dictionaries(_text, st.integers() | _text, max_size=3)
_time = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@given(kind=st.sampled_from(["track", "identify", "page", "group", "alias", "consent"]), mid=_text, src=_text,
       user=_opt, anon=_opt, name=_opt, event=_opt, group=_opt, previous=_opt, props=_map, traits=_map,
       context=_map, integrations=_map, ts=_time, received=_time, original=st.none() | _time,
       sent=st.none() | _time, trust=st.sampled_from(TRUSTS))
def test_split_event_equals_splitting_the_record(kind: str, mid: str, src: str, user: str | None,
                                                 anon: str | None, name: str | None, event: str | None,
                                                 group: str | None, previous: str | None, props: dict,
                                                 traits: dict, context: dict, integrations: dict, ts: datetime,
                                                 received: datetime, original: datetime | None,
                                                 sent: datetime | None, trust: str) -> None:
    e = Event(kind=kind, message_id=mid, source=src, timestamp=ts, received_at=received, user_id=user,
              anonymous_id=anon, event=event, name=name, group_id=group, previous_id=previous, properties=props,
              traits=traits, context=context, integrations=integrations, original_timestamp=original,
              sent_at=sent, trust=trust)
    skeleton, personal = split_event(e)
    want_skeleton, want_personal = split_record(e.to_record(times=False))
    assert list(skeleton.items()) == list(want_skeleton.items())
    assert list(personal.items()) == list(want_personal.items())
    opt = orjson.OPT_UTC_Z
    assert orjson.dumps(skeleton, option=opt) == orjson.dumps(want_skeleton, option=opt)
