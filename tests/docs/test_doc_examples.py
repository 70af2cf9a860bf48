"""Every runnable example in docs/ runs on the demo and returns a non-empty answer (issue 12.6).

One small demo workspace is built per test session (300 customers, a fixed end; CLV fitted and models trained
and scored, as docs/clv.md and docs/models.md say to), then:

- every ``takt …`` command of the docs' shell blocks runs (in-process, through the CLI) with the demo's
  workspace, exits 0 and prints something;
- every ``curl …`` call runs against the demo's API (in-process) with the demo's keys and gets a 2xx with a
  non-empty body;
- every segment definition in docs/segments.md's tables matches at least one demo profile.

Examples that are deliberately illustrative (they build another demo, serve forever, install packages, need
files or engines the demo does not have) are listed in ILLUSTRATIVE with why; only those are skipped, and a
listed example that no longer exists in the docs is an error, so the list cannot go stale.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.docs.examples import DOCS, Example, all_commands, definitions

END = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
ROOT = DOCS.parent

ILLUSTRATIVE: dict[str, str] = {
    # the example (doc: command or definition) → why it is not run here
    "demo.md: takt demo --customers 5000 --days 365 --seed 7": "builds another, bigger demo",
    "demo.md: takt demo --no-serve -w /tmp/demo": "builds another demo",
    "demo.md: takt demo --end 2026-11-24": "builds another demo",
    "import.md: takt import orders orders.parquet -w ./shop --map revenue=total": "the reader's own CRM export",
    "import.md: takt import cases cases.jsonl -w ./shop --mapping columns.toml": "the reader's own CRM export",
    "import.md: takt import products catalog.csv -w ./shop": "the reader's own CRM export",
    "import.md: takt import customers vendor.csv -w ./shop --source enrichment-vendor --provenance third_party "
    "--not-customer-given --map row_key=vendor_ref": "the reader's own vendor file",
    "segments.md: takt segment count de --engine postgres": "needs a PostgreSQL workspace (the demo is DuckDB)",
    "segments.md: takt segment count -w ./shop 'count(track \"Order Completed\" in last 365d) >= 2' --engine spark":
        "Spark needs Java and the spark extra (tests/test_spark_engine.py runs it with TAKT_TEST_SPARK=1)",
    "clv.md: takt clv fit FILE --customer-col C --date-col D --amount-col A --calibration-end YYYY-MM-DD":
        "a synopsis: FILE and the columns are placeholders",
    "clv.md: takt clv fit '[-w' 'WORKSPACE]' '[--calibration-end' 'YYYY-MM-DD]' '[--save]' '[same' options as above, "
    "no column 'options]'": "a synopsis",
    "clv.md: takt clv score '[-w' 'WORKSPACE]' '[--calibration-end' '…]' '[--horizon-weeks' '52]' '[--time-unit' "
    "'weeks]'": "a synopsis",
    'segments.md: in segment("vip")': "names a stored segment 'vip' the demo does not define",
    "segments.md: trait.age >= 18": "the demo's people have no numeric trait (the row shows number comparisons)",
    "segments.md: trait.vip = true": "the demo's people have no boolean trait (the row shows booleans)",
}

WORKSPACE_WORDS = ("./shop", "demo-workspace", "WS", "/tmp/demo")


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from takt.cli.main import main
    from takt.clock import FixedClock
    from takt.demo.feed import build_demo
    from takt.demo.generator import DemoConfig

    path = tmp_path_factory.mktemp("docs") / "demo-workspace"
    build_demo(path, DemoConfig(end=END, customers=300, days=365, seed=1), clock=FixedClock(END),
               transport="testclient")
    at = ["--at", END.isoformat()]
    for args in (["clv", "score", "-w", str(path)], ["models", "train", "--all", "--quiet", "-w", str(path), *at],
                 ["models", "score", "--quiet", "-w", str(path), *at]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 0, (args, r.output)
    yield path


def _argv(e: Example, demo: Path, tmp: Path) -> list[str]:
    words = e.argv()
    out: list[str] = []
    for w in words:
        if w in WORKSPACE_WORDS:
            out.append(str(demo))
        elif w in ("de.csv", "./export", "offers.yaml", "touchpoints.png", "attribution.svg", "attribution.csv"):
            out.append(str(tmp / w) if w != "offers.yaml" else str(demo / w))
        elif w == "OFFER_ID":
            out.append("nyc-weekend")
        elif w.startswith(("tests/data/", "docs/examples/")):
            out.append(str(ROOT / w))
        elif w.startswith("crm/"):  # the demo's own CRM exports
            out.append(str(demo / w))
        else:
            out.append(w)
    # a synopsis's optional parts, `[--replace] [--check]`: run the plain form
    return [w for w in out if not (w.startswith("[") and w.endswith("]"))]


def _params(examples: list[Example]) -> list[Any]:
    return [pytest.param(e, id=e.where) for e in examples]


def test_the_illustrative_list_names_existing_examples() -> None:
    where = {e.key for e in all_commands()} | {e.key for e in definitions(DOCS / "segments.md")}
    assert set(ILLUSTRATIVE) <= where, sorted(set(ILLUSTRATIVE) - where)


TAKT = [e for e in all_commands() if e.text.startswith("takt ")]
CURL = [e for e in all_commands() if e.text.startswith("curl ")]


def test_every_takt_command_runs_on_the_demo(demo: Path, tmp_path: Path) -> None:
    """In document order (a block may create what the next line uses), each with a non-empty output."""
    from takt.cli.main import main

    failures = []
    for e in TAKT:
        if e.key in ILLUSTRATIVE:
            continue
        argv = _argv(e, demo, tmp_path)[1:]
        r = CliRunner().invoke(main, argv, env={"TAKT_WORKSPACE": str(demo)}, catch_exceptions=True)
        wrote = any((tmp_path / f).exists() for f in ("de.csv", "export", "touchpoints.png"))
        if r.exit_code != 0 or not (r.output.strip() or wrote):
            failures.append(f"{e.where}: {shlex.join(argv)} → exit {r.exit_code}: {r.output[-400:]!r}")
    assert not failures, "\n".join(failures)


def _curl(e: Example, keys: dict[str, Any], verification_secret: str) -> tuple[str, str, dict[str, str], Any]:
    import base64

    from takt.ingest.verification import user_hash

    words = e.argv()[1:]
    method, url, headers, data = "GET", "", {}, None
    env = {"$ADMIN": keys["admin"], "$READ": keys["read"], "$WRITE_KEY": keys["write"]["website"]["key"],
           "$SERVER_KEY": keys["write"]["store"]["key"], "$PUBLIC_KEY": keys["write"]["website"]["key"]}
    i = 0
    while i < len(words):
        w = words[i]
        if w == "-u":  # a write key as HTTP Basic user name
            user = words[i + 1].partition(":")[0]
            raw = env.get(user, user)
            headers["Authorization"] = "Basic " + base64.b64encode(f"{raw}:".encode()).decode()
            i += 2
        elif w == "-X":
            method, i = words[i + 1], i + 2
        elif w == "-H":
            name, _, value = words[i + 1].partition(":")
            for var, key in env.items():
                value = value.replace(var, key)
            headers[name.strip()] = value.strip()
            i += 2
        elif w == "-d":
            data, i = words[i + 1], i + 2
            method = "POST" if method == "GET" else method
            if "$HASH" in data:  # the hash the reader's backend computes for the call's userId
                data = data.replace("$HASH", user_hash(verification_secret, json.loads(
                    data.replace("$HASH", ""))["userId"]))
        else:
            url, i = w, i + 1
    return method, url.split("8321", 1)[1], headers, data


def test_every_curl_call_runs_on_the_demo(demo: Path) -> None:
    from starlette.testclient import TestClient

    from takt.api.app import create_app
    from takt.clock import FixedClock
    from takt.workspace import open_workspace

    keys = json.loads((demo / "demo-keys.json").read_text())
    ws = open_workspace(demo)
    failures = []
    with ws.open_storage() as storage, TestClient(create_app(storage, ws.settings, FixedClock(END))) as client:
        for e in CURL:
            if e.key in ILLUSTRATIVE:
                continue
            method, path, headers, data = _curl(e, keys, ws.verification_secret())
            r = client.request(method, path, headers=headers, content=data)
            if not (200 <= r.status_code < 300 and r.content.strip()):
                failures.append(f"{e.where}: {method} {path} → {r.status_code} {r.text[:300]}")
    assert not failures, "\n".join(failures)


def test_every_segment_definition_in_the_docs_finds_people(demo: Path) -> None:
    from takt.clock import FixedClock
    from takt.models import scoring
    from takt.models.clv import segment as clv_segment
    from takt.policy import segment_functions
    from takt.profiles.config import ProfileConfig
    from takt.projections.runner import ProfileRunner
    from takt.projections.tables import WorkspaceTables, count_query
    from takt.segments import compile_segment, parse
    from takt.workspace import open_workspace

    assert scoring and clv_segment and segment_functions  # their functions are registered
    ws = open_workspace(demo)
    failures = []
    with ws.open_storage() as storage:
        runner = ProfileRunner(storage, ProfileConfig.from_settings(ws.settings), FixedClock(END))
        runner.load()
        runner.catch_up()
        tables = WorkspaceTables(storage, runner)
        tables.refresh(END)
        for e in definitions(DOCS / "segments.md"):
            if e.key in ILLUSTRATIVE:
                continue
            query = count_query(compile_segment(parse(e.text), now=END, dialect_name=tables.dialect))
            n = int(tables.rows(query)[0][0])
            if n == 0:
                failures.append(f"{e.where}: {e.text} matches nobody on the demo")
    assert not failures, "\n".join(failures)


