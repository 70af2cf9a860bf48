"""The spark dialect's SQL runs in Spark local mode over the fixed dataset and gives the hand-worked members.

``scripts/test`` (what CI runs) sets ``TAKT_TEST_SPARK=1`` and installs the ``spark`` extra; the machine needs
Java 17+. A bare ``pytest`` without the variable leaves Spark out (it takes about a minute to start); the spark
SQL is then still checked to parse as Spark SQL (test_golden.py)."""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from sqlglot import exp

from takt.segments.compile import compile_segment
from takt.segments.dialects import Spark
from takt.segments.parser import parse
from tests.segments.db import rows
from tests.segments.examples import EXAMPLES, EXPECTED, FIXTURE_VIEWS, SEGMENTS_TEXT
from tests.segments.strategies import NOW

if os.environ.get("TAKT_TEST_SPARK", "") != "1":
    # scripts/test (and so CI) sets TAKT_TEST_SPARK=1; a bare `pytest` run on a laptop may leave Spark out
    pytest.skip("Spark execution is opt-in: set TAKT_TEST_SPARK=1", allow_module_level=True)
# Asked for, Spark must really run: a missing extra or Java is a failure, not a skip.
import pyspark  # noqa: F401 (fails here when the extra is missing)

if shutil.which("java") is None:
    raise RuntimeError("TAKT_TEST_SPARK=1 but no `java` on PATH: Spark local mode needs Java 17+")

SEGMENTS = {name: parse(text) for name, text in SEGMENTS_TEXT.items()}

SCHEMAS = {
    "profiles": "profile_id STRING, first_seen TIMESTAMP, last_seen TIMESTAMP, top_interest STRING, "
                "interest_shifted_at TIMESTAMP",
    "profile_traits": "profile_id STRING, name STRING, value STRING, provenance STRING",
    "profile_interests": "profile_id STRING, key STRING, score DOUBLE, as_of TIMESTAMP, half_life_days DOUBLE",
    "profile_touchpoints": "profile_id STRING, touchpoint STRING, count BIGINT, last_at TIMESTAMP",
    "profile_events": "profile_id STRING, kind STRING, event STRING, name STRING, ts TIMESTAMP, properties STRING",
}


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from pyspark.sql import SparkSession

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session = (
            SparkSession.builder.master("local[2]").appName("takt-segments")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.shuffle.partitions", "1")
            .config("spark.sql.codegen.wholeStage", "false")
            .config("spark.sql.codegen.factoryMode", "NO_CODEGEN")
            .config("spark.sql.adaptive.enabled", "false")
            .getOrCreate()
        )
    session.sparkContext.setLogLevel("ERROR")
    try:
        data = rows(FIXTURE_VIEWS)
        for table, schema in SCHEMAS.items():
            session.createDataFrame(data[table], schema=schema).createOrReplaceTempView(table)
        yield session
    finally:
        session.stop()


def union_sql(names: list[str], optimize: bool) -> str:
    """All examples in one Spark job: ``SELECT 0 AS q, profile_id FROM (<example 0>) UNION ALL ...``."""
    parts = [
        exp.select(exp.alias_(exp.Literal.number(i), "q"), exp.column("profile_id", f"s{i}")).from_(
            compile_segment(parse(EXAMPLES[name]), now=NOW, dialect_name="spark", segments=SEGMENTS,
                            optimize=optimize).subquery(f"s{i}"))
        for i, name in enumerate(names)
    ]
    query: exp.Query = parts[0]
    for part in parts[1:]:
        query = exp.union(query, part, distinct=False)
    return query.sql(dialect="spark")


@pytest.mark.parametrize("optimize", [False, True])
def test_examples_on_spark(spark: Any, optimize: bool) -> None:
    names = sorted(EXAMPLES)
    got: dict[str, set[str]] = {name: set() for name in names}
    for q, pid in spark.sql(union_sql(names, optimize)).collect():
        got[names[q]].add(pid)
    assert got == {name: EXPECTED[name] for name in names}


def test_json_text_forms_match_the_other_engines(spark: Any) -> None:
    """Spark's GET_JSON_OBJECT gives the same text forms the evaluator assumes."""
    docs = ['"DE"', "33", "2.5", "true", "null", '"null"']
    values = exp.Values(expressions=[exp.tuple_(exp.Literal.string(d)) for d in docs],
                        alias=exp.TableAlias(this=exp.to_identifier("t"), columns=[exp.to_identifier("v")]))
    text = Spark().json_text(exp.column("v"), ())
    got = [r[0] for r in spark.sql(exp.select(text).from_(values).sql(dialect="spark")).collect()]
    assert got == ["DE", "33", "2.5", "true", None, "null"]
