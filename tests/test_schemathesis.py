"""Property-based API testing with schemathesis: every operation in ``/openapi.json``, fed generated valid and
invalid requests through the real ASGI app (DuckDB in a temporary folder, real keys), answers without a
server error and only with statuses, content types, headers and bodies that the document declares; and on
the collection endpoints a request the document calls valid is accepted (``positive_data_acceptance``).

The sweep (``test_extreme_values_never_cause_a_server_error``) then puts extreme values into every parameter of
every operation — times of any year and offset, segment definitions nesting deep or holding huge numbers,
windows and dates, odd quotes and backslashes, huge and deep JSON — and expects no 5xx (issue 11 item 3).
Everything is derandomized, without an example database: the same requests on every run."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from takt.api import app as app_module
from takt.api.app import create_app
from takt.api.openapi import document
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage

MAX_EXAMPLES = 12  # per operation and mode (the short aliases share a handler with their long path: fewer)
ALIAS_EXAMPLES = 4
PRIMARY = {"/v1/track", "/v1/identify", "/v1/page", "/v1/screen", "/v1/group", "/v1/alias", "/v1/batch"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]
# The collection API also promises that whatever its document calls valid is stored (2xx).
COLLECT_CHECKS = [*CHECKS, positive_data_acceptance]


# Valid data is a plausible time: a date-time of any year is valid JSON Schema, but takt refuses an event time
# outside its window (docs/api.md, *Plausible times*); the sweep below sends the implausible ones.
PLAUSIBLE_TIMES = st.builds(
    lambda t, off: t.replace(tzinfo=None).isoformat() + off,
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2025, 12, 31)),
    st.sampled_from(["Z", "+00:00", "+02:00", "-05:00", "+05:30"]))
schemathesis.openapi.format("date-time", PLAUSIBLE_TIMES)


class Api:
    def __init__(self, path: Path):
        self.storage = DuckDBStorage(path / "takt.duckdb")
        now = datetime.now(UTC)
        _, w = self.storage.keys.create("write", "website", None, "customer_provided", now=now)
        _, a = self.storage.keys.create("admin", "ops", None, None, now=now)
        self.write_key, self.admin_key = w.reveal(), a.reveal()
        self.app = create_app(self.storage, load(None, env={}))
        self.schema = schemathesis.openapi.from_asgi("/openapi.json", self.app)

    def headers_for(self, operation: dict[str, Any]) -> dict[str, str]:
        """Credentials the operation's ``security`` asks for (a write key, or an admin key as Bearer)."""
        schemes = {name for req in operation.get("security", []) for name in req}
        if "writeKeyBasic" in schemes:
            return {"Authorization": "Basic " + base64.b64encode(f"{self.write_key}:".encode()).decode()}
        if "bearer" in schemes:
            return {"Authorization": f"Bearer {self.admin_key}"}
        return {}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    a = Api(tmp_path_factory.mktemp("schemathesis"))
    try:
        yield a
    finally:
        a.storage.close()


def served_document() -> dict[str, Any]:
    """The document as ``/openapi.json`` serves it (with the paths other packages add)."""
    extra: dict[str, Any] = {}
    for fn in app_module.OPENAPI_PATHS:
        extra.update(fn())
    return document(extra)


def _cases() -> list[Any]:
    """(path, method, mode) for every documented operation; invalid data only where there is input."""
    out = []
    for path, item in served_document()["paths"].items():
        for method, op in item.items():
            modes = [GenerationMode.POSITIVE]
            if op.get("requestBody") or op.get("parameters"):
                modes.append(GenerationMode.NEGATIVE)
            for mode in modes:
                label = "valid" if mode is GenerationMode.POSITIVE else "invalid"
                out.append(pytest.param(path, method, mode, id=f"{method.upper()} {path} {label}"))
    return out


@pytest.mark.parametrize("path,method,mode", _cases())
def test_operation_conforms_to_the_document(api: Api, path: str, method: str, mode: GenerationMode) -> None:
    operation = api.schema[path][method]
    spec = served_document()["paths"][path][method]
    headers = api.headers_for(spec)
    collect = spec.get("operationId", "").startswith("collect")
    checks = COLLECT_CHECKS if collect else CHECKS
    seen: dict[int, int] = {}
    examples = MAX_EXAMPLES if path in PRIMARY or method == "get" else ALIAS_EXAMPLES

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        response = case.call_and_validate(headers=headers, checks=checks)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1

    run()
    assert sum(seen.values()) > 0
    if collect and mode is GenerationMode.POSITIVE:
        # the valid cases really reached the log (positive_data_acceptance already asks each for a 2xx)
        assert seen.get(200, 0) > 0, seen
    if collect and mode is GenerationMode.NEGATIVE:
        assert seen.get(400, 0) > 0, seen
    if mode is GenerationMode.POSITIVE and path == "/v1/batch":
        assert api.storage.log.count() > 0  # what was acknowledged is in the log


# ---------------------------------------------------------------- the sweep of extreme values
SWEEP_EXAMPLES = 10  # drawn per operation (53 operations), besides the canonical values in every slot
ALIASES = {"/v1/t", "/v1/i", "/v1/p", "/v1/s", "/v1/g", "/v1/a", "/v1/b", "/b", "/v1/import"}
"""Short paths sharing their handler with a long one: drawn values only."""


def _time_text(year: int, month: int, day: int, hour: int, offset: str, frac: str) -> str:
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:59:59{frac}{offset}"


EXTREME_TIMES = st.one_of(
    st.sampled_from([
        "9999-12-31T23:59:59-05:00", "9999-12-31T23:59:59.999999Z", "0001-01-01T00:00:00+05:00",
        "0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "3000-01-01", "2099-01-01T00:00:00Z", "10000-01-01T00:00:00Z",
        "-0001-01-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-06-30T23:59:60Z", "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00.1234567890123Z", "now", "", "T", "2026-13-01", "1e10", "0",
    ]),
    st.builds(_time_text, st.integers(1, 9999), st.integers(1, 12), st.integers(1, 28), st.integers(0, 23),
              st.sampled_from(["Z", "+23:59", "-23:59", "+14:00", "-12:00", ""]),
              st.sampled_from(["", ".999999", ".5"])),
)


def _nest(depth: int, how: str) -> str:
    atom = 'trait.country = "DE"'
    if how == "parens":
        return "(" * depth + atom + ")" * depth
    if how == "not":
        return "not " * depth + atom
    return "count(track \"E\" where " * depth + "properties.x exists" + ") >= 1" * depth


def _quoted(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


ODD_NAMES = st.text(alphabet="\\\"'ab.$[] ", min_size=1, max_size=6)
HUGE_NUMBERS = st.one_of(st.integers(-(10**60), 10**60).map(str), st.sampled_from(
    ["1e400", "-1e400", "1e308", "9" * 5000, "0.000000000000000000000000001", "-0", "1e-400"]))
SEGMENT_TEXTS = st.one_of(
    st.builds(_nest, st.integers(1, 400), st.sampled_from(["parens", "not", "where"])),
    HUGE_NUMBERS.map(lambda n: f"trait.n > {n}"),
    HUGE_NUMBERS.map(lambda n: f"trait.n in [1, {n}]"),
    st.builds(lambda n, u: f"last_seen within {n}{u}", st.integers(0, 10**30), st.sampled_from("hdw")),
    st.builds(lambda n, u: f'count(track "E" in last {n}{u}) >= 1', st.integers(0, 10**30), st.sampled_from("hdw")),
    st.builds(lambda y, w: f"first_seen {w} {y:04d}-12-31", st.integers(1, 9999), st.sampled_from(["before", "after"])),
    st.builds(lambda y1, y2: f"count(page between {y1:04d}-01-01 and {y2:04d}-12-31) >= 1",
              st.integers(1, 9999), st.integers(1, 9999)),
    ODD_NAMES.map(lambda n: f"count(track \"E\" where properties.{_quoted(n)} = {_quoted(n)}) >= 1"),
    ODD_NAMES.map(lambda n: f"trait.{_quoted(n)} = {_quoted(n)}"),
    ODD_NAMES.map(lambda n: f'trait.x = "{n}'),  # unterminated, escapes as they come
    st.sampled_from(['interest("topic:x") > 1e15', 'interest("x\\") > 0.5', "trait.\"\\\" exists", "#" * 5000]),
)


def _deep(depth: int) -> Any:
    v: Any = 1
    for _ in range(depth):
        v = {"a": v}
    return v


ANY_VALUE = st.one_of(
    EXTREME_TIMES, SEGMENT_TEXTS,
    st.sampled_from([2**63, -(2**63) - 1, 2**64, 10**30, 1e308, -1e308, 5e-324, 0, -1, True, None, "", "\x00",
                     "a" * 20_000, "\\", '"', "'", [], {}, [[[]]]]),
    st.integers(1, 300).map(_deep),
)
TIME_NAMES = {"at", "timestamp", "originalTimestamp", "sentAt", "before", "after", "since", "until"}
COLLECT_FIELDS = ("timestamp", "originalTimestamp", "sentAt", "properties", "traits", "context", "integrations",
                  "userId", "anonymousId", "event", "messageId", "name", "groupId", "previousId")


# The nastiest values, tried in every slot of every operation (besides the drawn ones): a derandomized draw
# finds a needle such as a year-9999 time at a negative offset only by luck.
CANONICAL_TIMES = ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59.999999Z",
                   "0001-01-01T00:00:00Z", "3000-01-01T00:00:00Z", "1969-12-31T23:59:59Z"]
CANONICAL_TEXTS = ["(" * 400 + "trait.a exists" + ")" * 400, "not " * 2000 + "trait.a exists",
                   "last_seen within 1000000000000d", 'count(track "E" in last 99999999999999w) >= 1',
                   "first_seen after 9999-12-31", "first_seen before 0001-01-01", "trait.n > " + "9" * 5000,
                   "trait.n > 1e400", 'count(track "E" where properties."x\\\\" = "\\\\") >= 1']


def _canonical(name: str) -> list[Any]:
    common: list[Any] = [_deep(300), 2**64, "\x00"]
    if name in TIME_NAMES:
        return [*CANONICAL_TIMES, *common]
    if name == "definition":
        return [*CANONICAL_TEXTS, *common]
    return [_deep(40), *common, CANONICAL_TIMES[0], CANONICAL_TEXTS[2]]


def _value_for(name: str) -> st.SearchStrategy[Any]:
    if name in TIME_NAMES:
        return st.one_of(EXTREME_TIMES, EXTREME_TIMES, ANY_VALUE)
    if name == "definition":
        return st.one_of(SEGMENT_TEXTS, SEGMENT_TEXTS, ANY_VALUE)
    if name in ("properties", "traits", "context", "integrations", "json", "evidence"):
        return st.one_of(st.integers(1, 300).map(_deep), ANY_VALUE)
    return ANY_VALUE


def _slots(spec: dict[str, Any], collect: bool, batch: bool) -> list[tuple[str, str]]:
    """Every place a value goes: (location, name)."""
    out = [(p["in"], p["name"]) for p in spec.get("parameters", []) if p["in"] in ("query", "path")]
    if collect:
        out += [("item" if batch else "body", f) for f in COLLECT_FIELDS]
        if batch:
            out += [("body", "sentAt"), ("body", "context")]
        return out
    for media, content in spec.get("requestBody", {}).get("content", {}).items():
        if media == "application/json":
            out += [("body", name) for name in content.get("schema", {}).get("properties", {})]
    return out


def _as_text(v: Any) -> str:
    """A query or path value: a lone surrogate cannot be put in a URL at all (the client fails, not the server)."""
    return (v if isinstance(v, str) else json.dumps(v)).encode("utf-8", "backslashreplace").decode()


def _inject(case: schemathesis.Case, where: str, name: str, value: Any) -> None:
    if where == "query":
        case.query = {**(case.query or {}), name: _as_text(value)}
    elif where == "path":
        case.path_parameters = {**(case.path_parameters or {}), name: _as_text(value)[:2000] or "x"}
    elif where == "body" and isinstance(case.body, dict) and case.media_type == "application/json":
        case.body = {**case.body, name: value}
    elif where == "item" and isinstance(case.body, dict) and isinstance(case.body.get("batch"), list) \
            and case.body["batch"] and isinstance(case.body["batch"][0], dict):
        case.body = {**case.body, "batch": [{**case.body["batch"][0], name: value}, *case.body["batch"][1:]]}


def _sweep_cases() -> list[Any]:
    """Every operation that takes input (/health and plain listings have nothing to sweep)."""
    out = []
    for path, item in served_document()["paths"].items():
        for method, spec in item.items():
            collect = spec.get("operationId", "").startswith("collect")
            if _slots(spec, collect, batch="batch" in spec.get("operationId", "")):
                out.append(pytest.param(path, method, id=f"{method.upper()} {path}"))
    return out


@pytest.fixture(scope="module")
def known(api: Api) -> dict[str, str]:
    """Path values that exist, so an extreme ``at`` reaches a real segment and profile: a segment with a window,
    an interest and a time condition, and a profile with a far-past and a recent event."""
    # through schemathesis's own transport, as every other request of this module (a second client would run
    # the app's lifespan again and replace the writer under it)
    admin = {"Authorization": f"Bearer {api.admin_key}"}
    write = {"Authorization": "Basic " + base64.b64encode(f"{api.write_key}:".encode()).decode()}
    r = api.schema["/v1/segments"]["POST"].Case(media_type="application/json", body={
        "name": "sweep", "allow_unknown_names": True,
        "definition": 'count(track "E" in last 30d) >= 1 or interest("topic:x") > 0.1 or last_seen within 7d',
    }).call(headers=admin)
    assert r.status_code in (201, 409), r.text
    r = api.schema["/v1/batch"]["POST"].Case(media_type="application/json", body={"batch": [
        {"type": "identify", "userId": "sweep-user", "traits": {"email": "sweep@example.com", "a\\b": "x"}},
        {"type": "track", "userId": "sweep-user", "event": "E", "timestamp": "1970-01-01T00:00:00Z",
         "properties": {"interest": "topic:x", "x\\": 1}},
        {"type": "track", "userId": "sweep-user", "event": "E", "properties": {"interest": "topic:x"}},
    ]}).call(headers=write)
    assert r.status_code == 200, r.text
    r = api.schema["/v1/profiles"]["GET"].Case(query={"identifier": "email:sweep@example.com"}).call(headers=admin)
    pid = r.json()["id"] if r.status_code == 200 else "p_missing"
    return {"name": "sweep", "profile_id": pid, "offer_id": "x", "token": "x"}


@pytest.mark.parametrize("path,method", _sweep_cases())
def test_extreme_values_never_cause_a_server_error(api: Api, known: dict[str, str], path: str, method: str) -> None:
    operation = api.schema[path][method]
    spec = served_document()["paths"][path][method]
    headers = api.headers_for(spec)
    collect = spec.get("operationId", "").startswith("collect")
    slots = _slots(spec, collect, batch="batch" in spec.get("operationId", ""))
    assert slots  # (_sweep_cases lists only operations with input)
    statuses: dict[int, int] = {}
    canonical_done = False

    def call(case: schemathesis.Case, slot: tuple[str, str]) -> None:
        response = case.call(headers=headers)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, (slot, response.status_code, response.text[:500])

    @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE), slot=st.sampled_from(slots),
           data=st.data(), real=st.booleans())
    @settings(max_examples=SWEEP_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case, slot: tuple[str, str], data: st.DataObject, real: bool) -> None:
        nonlocal canonical_done
        if real:  # the other path values name things that exist
            case.path_parameters = {**(case.path_parameters or {}),
                                    **{k: v for k, v in known.items() if k in (case.path_parameters or {})}}
        if not canonical_done and path not in ALIASES:
            canonical_done = True
            saved = copy.deepcopy((case.query, case.path_parameters, case.body))
            for where, name in slots:
                for value in _canonical(name):
                    case.query, case.path_parameters, case.body = copy.deepcopy(saved)
                    _inject(case, where, name, value)
                    call(case, (where, name))
            case.query, case.path_parameters, case.body = saved
        _inject(case, *slot, data.draw(_value_for(slot[1]), label=f"{slot[0]}.{slot[1]}"))
        call(case, slot)

    run()
    assert sum(statuses.values()) > 0
