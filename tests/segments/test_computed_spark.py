"""Computed traits in Spark local mode: the spark dialect's rows equal the live values on the fixed dataset.
Opt-in like ``test_spark.py`` (``TAKT_TEST_SPARK=1``; CI sets it)."""

from __future__ import annotations

import json
import math
from typing import Any

from takt.segments.computed import compute, computed_sql
from tests.segments.examples import FIXTURE_VIEWS
from tests.segments.strategies import NOW
from tests.segments.test_computed import TRAITS
from tests.segments.test_spark import spark  # noqa: F401 (the module's Spark session fixture; skips without Spark)


def test_computed_traits_on_spark(spark: Any) -> None:  # noqa: F811
    got = {(pid, name): json.loads(value)
           for pid, name, value, _ in spark.sql(computed_sql(TRAITS, now=NOW, dialect_name="spark")).collect()}
    want = {(v.profile_id, t.name): compute(t, v, NOW) for v in FIXTURE_VIEWS for t in TRAITS}
    want = {k: v for k, v in want.items() if v is not None}
    assert got.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, float):
            assert math.isclose(got[key], value, rel_tol=1e-9), key
        else:
            assert got[key] == value, key
    assert len(want) >= 5, "the fixed dataset must give the computed traits values"
