"""``bench/product.py`` at a tiny size: every figure of issue 13 is measured and reported with its target and
verdict (numbers, never timing assertions); the count after ingest sees every new person; a failing stage is
reported in the JSON and the exit status, and the stages that need it are skipped, not run on nothing."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "product.py"
KEYS = ["rebuild_events_per_s", "rebuild_peak_rss_mb", "cli_count_seconds", "api_count_seconds",
        "count_after_ingest_seconds", "decide_p99_ms", "nbo_p99_ms", "read_p99_ms", "visible_p99_ms",
        "serve_peak_rss_mb", "cli_help_seconds"]
KERNELS = ["kernel_rebuild_sql_events_per_s", "kernel_count_sql_seconds"]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("takt_bench_product", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _run(args: list[str], env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    env = {**(env if env is not None else os.environ), "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, str(SCRIPT), "--json", *args], capture_output=True, text=True, env=env,
                         timeout=580)
    return out.returncode, json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


@pytest.mark.slow
def test_every_figure_is_measured_beside_its_target() -> None:
    rc, s, err = _run(["--profiles", "60", "--events", "600", "--seconds", "1", "--rate", "5",
                       "--ingest-rate", "200"])
    assert s["failures"] == [], err[-3000:]
    assert rc == 0
    assert sorted(s["results"]) == sorted(KEYS)
    for key in KEYS:
        assert _number(s[key]), (key, s[key])
        r = s["results"][key]
        assert r["value"] == s[key]
        assert r["met"] in (True, False)
        assert r["target"].split()[0] in ("<", ">=") and _number(float(r["target"].split()[1]))
    for kernel in KERNELS:
        assert _number(s[kernel]), kernel
    assert s["results"]["cli_count_seconds"]["kernel_value"] == s["kernel_count_sql_seconds"]
    assert s["log_events"] == 60 + 600  # the customers' records and the tracking events, all acknowledged
    assert s["rebuild_events"] >= s["log_events"]  # and the derived events the fold appended
    assert s["rebuild_profiles"] == 60  # each person's events and customer record in one profile
    assert s["count_agrees"] is True  # the CLI and the kernel SQL count the same members
    assert s["count_after_ingest_delta"] == 100  # the count right after the acknowledgements sees every new person
    assert s["visible_probes"] >= 1 and s["load"]["read"]["requests"] >= 5
    assert s["met"] + len(s["missed"]) == len(KEYS) and s["not_measured"] == []


def test_a_failing_stage_is_reported_and_what_needs_it_is_skipped() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TAKT_TEST_POSTGRES_URL"}
    rc, s, _ = _run(["--profiles", "10", "--events", "10", "--backend", "postgres"], env)
    assert rc == 1
    stages = {f["stage"]: f["error"] for f in s["failures"]}
    assert "--database-url" in stages["init"]
    assert stages["takt rebuild"].startswith("skipped")
    assert stages["takt serve"].startswith("skipped")
    assert _number(s["cli_help_seconds"])  # a stage that needs nothing still ran
    assert s["results"]["rebuild_events_per_s"]["met"] is None
    assert "rebuild_events_per_s" in s["not_measured"] and "cli_help_seconds" not in s["not_measured"]


def test_each_person_is_linked_to_their_customer_record_by_their_first_event() -> None:
    product = _bench()
    firsts = [product.tracking_event(i, 50, "r", 1.8e9) for i in range(50)]
    assert all(e["type"] == "identify" and e["traits"]["email"] == f"p{i}@example.com"
               for i, e in enumerate(firsts))
    later = [product.tracking_event(i, 50, "r", 1.8e9) for i in range(50, 5000)]
    assert {e["type"] for e in later} == {"track", "page"}
    assert len({e["messageId"] for e in firsts + later}) == 5000


def test_the_new_people_are_ten_thousand_events() -> None:
    product = _bench()
    items = [e for body in product.matching_people("r", 1.8e9) for e in orjson.loads(body)["batch"]]
    assert len(items) == 10_000 and len({e["messageId"] for e in items}) == 10_000
    assert len({e["userId"] for e in items}) == 100


@pytest.mark.parametrize(("op", "value", "target", "met"), [
    (">=", 300_000, 300_000, True), (">=", 299_999.9, 300_000, False), ("<", 1.99, 2, True), ("<", 2, 2, False),
    ("<", None, 2, None), ("<", float("nan"), 2, None)])
def test_verdict(op: str, value: Any, target: float, met: bool | None) -> None:
    assert _bench().verdict(op, value, target) is met
