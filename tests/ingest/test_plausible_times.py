"""Times outside the plausible window (issue 11 item 3): refused with a per-item reason, or — where takt derives
the time from device clocks — clamped to when the event arrived; never a 500 (``OverflowError``) anywhere a time
enters: the collection API, imports, ``?at=``/``"at"`` on the API and the CLI's ``--at``."""

from __future__ import annotations

import base64
import csv
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from takt.api.app import create_app
from takt.cli.main import at_or_now
from takt.ingest.records import ImportOptions, import_file
from takt.ingest.segment import ItemError, Limits, Source, normalize
from takt.ingest.window import TimeWindow
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SRC = Source("web", "observed")
# Year 9999 at a negative offset is past datetime.max once in UTC; year 1 at a positive offset is before min.
OVERFLOWING = ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"]


def track(**extra: object) -> dict[str, object]:
    return {"type": "track", "userId": "u1", "event": "E", **extra}


def reason(item: dict[str, object]) -> ItemError:
    with pytest.raises(ItemError) as e:
        normalize(item, None, SRC, NOW, Limits())
    return e.value


# ---- the collection API's fields ----
@pytest.mark.parametrize("value", ["2030-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "0001-01-01T00:00:00Z",
                                   "9999-12-31T23:59:59Z", *OVERFLOWING])
def test_a_declared_timestamp_outside_the_window_is_refused(value: str) -> None:
    e = reason(track(timestamp=value))
    assert e.field == "timestamp" and "timestamp" in e.reason


def test_the_window_edges() -> None:
    ok = normalize(track(timestamp="1970-01-01T00:00:00Z"), None, SRC, NOW, Limits())
    assert ok.timestamp == datetime(1970, 1, 1, tzinfo=UTC)
    edge = NOW + timedelta(hours=24)
    assert normalize(track(timestamp=edge.isoformat()), None, SRC, NOW, Limits()).timestamp == edge
    e = reason(track(timestamp=(edge + timedelta(seconds=1)).isoformat()))
    assert "more than 24 hours after" in e.reason


@pytest.mark.parametrize("field", ["originalTimestamp", "sentAt"])
@pytest.mark.parametrize("value", OVERFLOWING)
def test_a_device_clock_beyond_datetime_is_a_reason_not_an_overflow(field: str, value: str) -> None:
    e = reason(track(**{field: value}))
    assert e.field == field and "representable" in e.reason


@pytest.mark.parametrize("original,sent", [
    ("2026-11-24T11:00:00Z", "1990-01-01T00:00:00Z"),   # corrected: decades ahead
    ("2026-11-24T11:00:00Z", "9999-01-01T00:00:00Z"),   # corrected: before year 1 (overflow)
    ("3000-01-01T00:00:00Z", None),                      # an uncorrected device clock in the far future
    ("1900-01-01T00:00:00Z", None),                      # … or the far past
])
def test_a_time_derived_from_device_clocks_is_clamped_to_arrival(original: str, sent: str | None) -> None:
    item = track(originalTimestamp=original, **({"sentAt": sent} if sent else {}))
    ev = normalize(item, None, SRC, NOW, Limits())
    assert ev.timestamp == NOW
    assert ev.original_timestamp is not None  # the device's readings are kept as they came


def test_skew_correction_inside_the_window_is_unchanged() -> None:
    ev = normalize(track(originalTimestamp="1970-01-01T00:10:00Z", sentAt="1970-01-01T00:15:00Z"), None, SRC,
                   NOW, Limits())
    assert ev.timestamp == NOW - timedelta(minutes=5)


def test_the_window_is_a_setting() -> None:
    s = load(None, env={"TAKT_INGEST__EARLIEST_TIME": "2000-01-01", "TAKT_INGEST__MAX_FUTURE_HOURS": "0"})
    w = TimeWindow.from_settings(s)
    assert w.earliest == datetime(2000, 1, 1, tzinfo=UTC) and w.future == timedelta(0)
    e = reason_with(track(timestamp="1999-12-31T00:00:00Z"), w)
    assert "before 2000-01-01" in e.reason


def reason_with(item: dict[str, object], window: TimeWindow) -> ItemError:
    with pytest.raises(ItemError) as e:
        normalize(item, None, SRC, NOW, Limits(window=window))
    return e.value


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(year=st.integers(1, 9999), hours=st.integers(-23, 23), field=st.sampled_from(
    ["timestamp", "originalTimestamp", "sentAt"]))
def test_any_year_and_offset_is_stored_in_the_window_or_refused(year: int, hours: int, field: str) -> None:
    sign = "+" if hours >= 0 else "-"
    value = f"{year:04d}-06-15T12:00:00{sign}{abs(hours):02d}:00"
    try:
        ev = normalize(track(**{field: value}), None, SRC, NOW, Limits())
    except ItemError as e:
        assert e.field == field and e.reason
        return
    assert TimeWindow().contains(ev.timestamp, NOW)


# ---- over HTTP ----
@pytest.fixture
def api(tmp_path: Path, clock) -> Iterator[tuple[TestClient, DuckDBStorage, str, str]]:
    storage = DuckDBStorage(tmp_path / "t.duckdb")
    _, w = storage.keys.create("write", "website", None, "customer_provided", now=clock())
    _, a = storage.keys.create("admin", "admin", None, None, now=clock())
    with TestClient(create_app(storage, load(None, env={}), clock)) as client:
        yield client, storage, w.reveal(), a.reveal()
    storage.close()


def test_a_batch_names_every_implausible_item(api) -> None:
    client, storage, write, _ = api
    auth = {"Authorization": "Basic " + base64.b64encode(f"{write}:".encode()).decode()}
    r = client.post("/v1/batch", headers=auth, json={"batch": [
        track(timestamp="2026-11-24T10:00:00Z"),
        track(timestamp="2999-01-01T00:00:00Z"),
        track(sentAt=OVERFLOWING[0]),
    ]})
    assert r.status_code == 400, r.text
    assert [(e["index"], e["field"]) for e in r.json()["errors"]] == [(1, "timestamp"), (2, "sentAt")]
    assert storage.log.count() == 0
    r = client.post("/v1/batch", headers=auth, json={"sentAt": OVERFLOWING[0], "batch": [track()]})
    assert r.status_code == 400 and "sentAt" in r.json()["message"]


@pytest.mark.parametrize("value", [*OVERFLOWING, "2999-01-01T00:00:00Z", "2037-01-01T00:00:00Z",
                                   "1066-10-14T00:00:00Z"])
@pytest.mark.parametrize("path", ["/v1/profiles/p1", "/v1/segments/x/count", "/v1/profiles/p1/segments"])
def test_query_at_outside_the_window_is_a_400(api, path: str, value: str) -> None:
    client, _, _, admin = api
    r = client.get(path, params={"at": value}, headers={"Authorization": f"Bearer {admin}"})
    assert r.status_code == 400, r.text
    assert "at" in r.json()["message"]


def test_a_view_may_look_a_year_ahead_but_not_to_the_year_9999(api) -> None:
    """``?at=`` only asks for a view: planning ahead is fine up to ``api.max_at_future_days``."""
    client, _, _, admin = api
    r = client.get("/v1/profiles/p1/segments", params={"at": "2027-11-01T00:00:00Z"},
                   headers={"Authorization": f"Bearer {admin}"})
    assert r.status_code != 400, r.text


def test_a_recorded_message_at_is_an_event_time_and_keeps_the_tight_window(api) -> None:
    client, storage, _, admin = api
    r = client.post("/v1/messages", json={"profile": "p1", "message_id": "m1", "channel": "email", "intent": "marketing",
                                          "status": "sent", "at": "2026-12-01T00:00:00Z"},
                    headers={"Authorization": f"Bearer {admin}"})
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["field"] == "at" and "in the future" in r.json()["errors"][0]["reason"]


@pytest.mark.parametrize("value", [*OVERFLOWING, "2999-01-01T00:00:00Z"])
def test_body_at_outside_the_window_is_a_400(api, value: str) -> None:
    client, _, _, admin = api
    r = client.post("/v1/decide", json={"profile": "p1", "intent": "marketing", "channels": ["email"], "at": value},
                    headers={"Authorization": f"Bearer {admin}"})
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["field"] == "at"


# ---- the CLI ----
@pytest.mark.parametrize("value", [*OVERFLOWING, "2999-01-01", "1900-01-01"])
def test_cli_at_outside_the_window_is_a_usage_error(value: str) -> None:
    with pytest.raises(click.BadParameter) as e:
        at_or_now(value)
    assert "--at" in str(e.value.param_hint)


# ---- imports ----
def test_import_rejects_rows_dated_outside_the_window(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["order_id", "crm_id", "revenue", "ordered_at"])
        w.writerow(["O1", "C1", "10", "2020-05-01T10:00:00Z"])
        w.writerow(["O2", "C1", "10", "1950-05-01"])
        w.writerow(["O3", "C1", "10", "2027-05-01"])
        w.writerow(["O4", "C1", "10", OVERFLOWING[0]])
    storage = DuckDBStorage(tmp_path / "t.duckdb")
    try:
        s = import_file(storage.log, path, "orders", ImportOptions(source="crm"), now=NOW)
        assert s.imported == 1 and s.rejected == 3
        with open(tmp_path / "orders.rejects.csv", encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        assert [r["reasons"] for r in rows] == ["invalid_date"] * 3
        assert "before 1970-01-01" in rows[0]["details"]
        assert "after" in rows[1]["details"]
        assert "ordered_at" in rows[2]["details"]
    finally:
        storage.close()


def test_a_birthday_before_the_window_is_still_a_birthday(tmp_path: Path) -> None:
    """The window is about when things happened in the CRM; a date of birth is not an event time."""
    path = tmp_path / "customers.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["crm_id", "birthday"])
        w.writerow(["C1", "1948-02-03"])
    storage = DuckDBStorage(tmp_path / "t.duckdb")
    try:
        s = import_file(storage.log, path, "customers", ImportOptions(source="crm"), now=NOW)
        assert s.imported == 1
    finally:
        storage.close()
