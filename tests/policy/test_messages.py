"""Message lifecycle events and the records contact pressure counts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from takt.errors import TaktError
from takt.policy.messages import complaint_times, engagement_counts, fold_messages, validate_message
from tests.factories import ev
from tests.policy.builders import T0, message


def test_lifecycle_events_fold_into_one_record_per_message() -> None:
    events = [
        message("delivered", message_id="m1", at=T0 + timedelta(minutes=1)),
        message("sent", message_id="m1", at=T0),  # arrives late
        message("opened", message_id="m1", at=T0 + timedelta(hours=2)),
        message("complained", message_id="m1", at=T0 + timedelta(hours=3)),
        message("sent", "sms", message_id="m2", at=T0 + timedelta(days=1), contact_point="+49 30 123",
                intent="transactional"),
        message("clicked", "push", message_id="m3", at=T0 + timedelta(days=2), contact_point="tok"),
        ev(99),
    ]
    m1, m2, m3 = fold_messages(events)
    assert (m1.message_id, m1.sent_at, m1.channel, m1.intent) == ("m1", T0, "email", "marketing")
    assert m1.statuses == {"sent", "delivered", "opened", "complained"}
    assert m1.complained_at == T0 + timedelta(hours=3)
    assert m2.contact_point == "+4930123" and m2.intent == "transactional" and m2.complained_at is None
    # a click with no "sent" still counts as a message sent at that time
    assert m3.sent_at == T0 + timedelta(days=2) and m3.statuses == {"clicked"}
    assert complaint_times([m1, m2, m3]) == (T0 + timedelta(hours=3),)
    assert engagement_counts([m1, m2, m3]) == {"email": 1, "push": 1}


def test_invalid_message_events_name_every_problem() -> None:
    with pytest.raises(TaktError) as exc:
        validate_message({"status": "read", "channel": "pigeon", "intent": "spam", "campaign": "",
                          "extra": 1})
    assert exc.value.code == "invalid_message"
    assert {e["field"] for e in exc.value.errors} == {"status", "channel", "intent", "campaign", "message_id",
                                                      "extra"}
    with pytest.raises(TaktError, match="must be an object"):
        validate_message("sent")
