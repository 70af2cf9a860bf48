"""Property names with a backslash, a double or a single quote reach the right JSON value on every engine
(issue 11 item 3): the JSON path the compiler builds escapes them, so a condition on ``properties."x\\"`` neither
misses its value nor makes the database refuse the path (a 500)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from takt.segments.compile import to_sql
from takt.segments.evaluate import members
from takt.segments.parser import parse
from takt.segments.view import EventRow, ProfileView
from tests.segments.db import DuckDB, Postgres
from tests.segments.strategies import NOW

NAMES = ["a\\b", 'a"b', "a'b", "x\\", 'a\\"b', "\\\\", "'", '"', "a.b", "a b", "$", "a[0]", "\\u0041", "é\\ü"]


def quoted(name: str) -> str:
    """The name as a string of the segment language (``\\"`` for a quote, ``\\\\`` for a backslash)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def db(request: pytest.FixtureRequest) -> DuckDB | Postgres:
    return request.getfixturevalue("duck" if request.param == "duckdb" else "pg")  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", NAMES)
def test_a_property_name_with_quotes_or_backslashes_finds_its_value(db: DuckDB | Postgres, name: str) -> None:
    at = NOW - timedelta(days=1)
    hit = ProfileView("hit", events=(EventRow("track", at, event="E", properties={name: "yes"}),))
    # a decoy whose key is what a wrongly escaped path would read instead
    wrong = {k: "yes" for k in (name.replace("\\", ""), name.replace("\\", "\\\\"), "a", "b", "x") if k != name}
    decoy = ProfileView("decoy", events=(EventRow("track", at, event="E", properties={**wrong, "a": {"b": "yes"}}),))
    views = [hit, decoy]
    tree = parse(f'count(track "E" where properties.{quoted(name)} = "yes") >= 1')
    assert members(tree, views, NOW) == {"hit"}
    db.load(views)
    for optimize in (False, True):
        sql = to_sql(tree, now=NOW, dialect_name=db.kind, optimize=optimize, pretty=False)
        assert db.members(sql) == {"hit"}, sql


@pytest.mark.parametrize("name,path", [("a'b", "$.a'b"), ("'", "$.'"), ("it's", "$.it's")])
def test_the_spark_path_names_a_key_with_a_quote_in_dot_form(name: str, path: str) -> None:
    """Spark's ``['key']`` cannot hold a ``'`` (checked against Spark 4 local mode: ``$['a\\'b']`` finds nothing,
    ``$.a'b`` finds the value); keys with a quote and a ``.`` or ``[`` cannot be named in Spark (missing)."""
    tree = parse(f'count(track "E" where properties.{quoted(name)} = "yes") >= 1')
    sql = to_sql(tree, now=NOW, dialect_name="spark", optimize=False, pretty=False)
    from sqlglot import exp, parse_one

    literals = [lit.this for lit in parse_one(sql, read="spark").find_all(exp.Literal) if lit.is_string]
    assert path in literals, sql
    unnamed = to_sql(parse('count(track "E" where properties."a\'.b" = "yes") >= 1'), now=NOW, dialect_name="spark",
                     optimize=False, pretty=False)
    assert "GET_JSON_OBJECT" not in unnamed
