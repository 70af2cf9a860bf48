"""Golden SQL: each example compiled (optimized) for each dialect, compared with tests/segments/golden/.

Regenerate after an intended change with ``TAKT_REGEN_GOLDEN=1 .venv/bin/pytest tests/segments/test_golden.py``
and review the diff."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlglot

from takt.models import scoring  # noqa: F401  (registers score())
from takt.models.clv import segment as clv_segment  # noqa: F401  (registers clv())
from takt.segments.compile import to_sql
from takt.segments.parser import parse
from tests.segments.examples import EXAMPLES, FUNCTION_EXAMPLES, SEGMENTS_TEXT
from tests.segments.strategies import NOW

GOLDEN = Path(__file__).parent / "golden"
DIALECTS = ("duckdb", "postgres", "spark")
REGEN = os.environ.get("TAKT_REGEN_GOLDEN", "") == "1"
SEGMENTS = {name: parse(text) for name, text in SEGMENTS_TEXT.items()}


GOLDEN_EXAMPLES = {**EXAMPLES, **FUNCTION_EXAMPLES}


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("name", sorted(GOLDEN_EXAMPLES))
def test_golden_sql(name: str, dialect: str) -> None:
    sql = to_sql(parse(GOLDEN_EXAMPLES[name]), now=NOW, dialect_name=dialect, segments=SEGMENTS) + "\n"
    path = GOLDEN / f"{name}.{dialect}.sql"
    if REGEN:
        path.write_text(sql)
    assert path.exists(), f"no golden file {path.name}: run with TAKT_REGEN_GOLDEN=1 and review it"
    assert sql == path.read_text(), f"{path.name} differs from the compiled SQL (TAKT_REGEN_GOLDEN=1 to update)"


def test_no_stale_golden_files() -> None:
    expected = {f"{n}.{d}.sql" for n in GOLDEN_EXAMPLES for d in DIALECTS}
    assert {p.name for p in GOLDEN.glob("*.sql")} == expected


@pytest.mark.parametrize("optimize", [False, True])
@pytest.mark.parametrize("name", sorted(GOLDEN_EXAMPLES))
def test_spark_sql_parses_as_spark(name: str, optimize: bool) -> None:
    sql = to_sql(parse(GOLDEN_EXAMPLES[name]), now=NOW, dialect_name="spark", segments=SEGMENTS, optimize=optimize)
    tree = sqlglot.parse_one(sql, read="spark")
    assert tree.find(sqlglot.exp.Select) is not None
    # what only Spark has: its JSON extraction, and no PostgreSQL/DuckDB operators
    if "trait." in GOLDEN_EXAMPLES[name] or "properties." in GOLDEN_EXAMPLES[name]:
        assert "GET_JSON_OBJECT(" in sql
    assert "->>" not in sql and "#>>" not in sql and "::" not in sql
