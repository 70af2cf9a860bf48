"""The function registry: functions plug in with their signature, English, SQL and live evaluation."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlglot import exp

from takt.segments.ast import Value
from takt.segments.compile import to_sql
from takt.segments.evaluate import evaluate, members
from takt.segments.explain import explain
from takt.segments.functions import FunctionContext, FunctionRegistry, FunctionSpec
from takt.segments.parser import parse
from takt.segments.view import ProfileView
from tests.segments.db import DuckDB, Postgres
from tests.segments.examples import FIXTURE_VIEWS
from tests.segments.strategies import NOW

SCORES = {("ana", "churn"): 0.9, ("ben", "churn"): 0.2, ("cem", "churn"): 0.75, ("ana", "ltv"): 10.0}
CONTACTABLE = {("ana", "email", "marketing"), ("cem", "email", "marketing"), ("ben", "sms", "marketing")}


def _score_sql(args: tuple[Value, ...], ctx: FunctionContext) -> exp.Expression:
    where = exp.and_(exp.column("profile_id", "s").eq(ctx.profile_id), exp.column("model", "s").eq(exp.Literal.string(str(args[0]))))
    return exp.select(exp.Max(this=exp.column("score", "s"))).from_(exp.to_table("profile_scores").as_("s")).where(where).subquery()


def _contactable_sql(args: tuple[Value, ...], ctx: FunctionContext) -> exp.Expression:
    where = exp.and_(exp.column("profile_id", "c").eq(ctx.profile_id),
                     exp.column("channel", "c").eq(exp.Literal.string(str(args[0]))),
                     exp.column("purpose", "c").eq(exp.Literal.string(str(args[1]))))
    return exp.Exists(this=exp.select("1").from_(exp.to_table("contactable").as_("c")).where(where))


def _score_live(args: tuple[Value, ...], view: ProfileView, now: datetime) -> float | None:
    return SCORES.get((view.profile_id, str(args[0])))


def _contactable_live(args: tuple[Value, ...], view: ProfileView, now: datetime) -> bool:
    return (view.profile_id, args[0], args[1]) in CONTACTABLE


REGISTRY = FunctionRegistry((
    FunctionSpec("score", (("model", "string"),), "number", lambda args: f"{args[0]} score",
                 _score_sql, _score_live),
    FunctionSpec("contactable", (("channel", "string"), ("purpose", "string")), "bool",
                 lambda args: f"who may be contacted by {args[0]} for {args[1]}", _contactable_sql, _contactable_live),
))

CASES = {
    'score("churn") > 0.7': {"ana", "cem"},
    'not score("churn") > 0.7': {"ben", "dan", "eva"},
    'score("churn") exists and score("churn") < 0.5': {"ben"},
    'contactable("email", "marketing")': {"ana", "cem"},
    'contactable("email", "marketing") and score("churn") > 0.8': {"ana"},
    'not contactable("email", "marketing") and count(track "Order Completed") >= 1': {"ben", "eva"},
}


def _load_extra(db: DuckDB | Postgres) -> None:
    for stmt in ("DROP TABLE IF EXISTS profile_scores", "DROP TABLE IF EXISTS contactable",
                 "CREATE TABLE profile_scores (profile_id VARCHAR, model VARCHAR, score DOUBLE PRECISION)",
                 "CREATE TABLE contactable (profile_id VARCHAR, channel VARCHAR, purpose VARCHAR)"):
        db.con.execute(stmt)
    mark = "?" if db.kind == "duckdb" else "%s"
    for (pid, model), score in SCORES.items():
        db.con.execute(f"INSERT INTO profile_scores VALUES ({mark}, {mark}, {mark})", (pid, model, score))
    for row in CONTACTABLE:
        db.con.execute(f"INSERT INTO contactable VALUES ({mark}, {mark}, {mark})", row)


@pytest.mark.parametrize("text", sorted(CASES))
def test_live(text: str) -> None:
    assert members(parse(text, functions=REGISTRY), FIXTURE_VIEWS, NOW, functions=REGISTRY) == CASES[text]


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_sql(engine: str, request: pytest.FixtureRequest) -> None:
    db: DuckDB | Postgres = request.getfixturevalue("duck" if engine == "duckdb" else "pg")
    db.load(FIXTURE_VIEWS)
    _load_extra(db)
    for text, expected in CASES.items():
        for optimize in (False, True):
            sql = to_sql(parse(text, functions=REGISTRY), now=NOW, dialect_name=engine, functions=REGISTRY,
                         optimize=optimize)
            assert db.members(sql) == expected, f"{text}\n{sql}"


def test_explain_uses_the_function_text() -> None:
    tree = parse('contactable("email", "marketing") and score("churn") > 0.7', functions=REGISTRY)
    assert explain(tree, REGISTRY) == (
        "people who may be contacted by email for marketing and whose churn score is more than 0.7")


def test_registering_twice_or_a_keyword_fails() -> None:
    reg = FunctionRegistry()
    spec = next(iter(REGISTRY))
    reg.register(spec)
    reg.register(spec)  # the same spec again is fine
    with pytest.raises(ValueError, match="registered twice"):
        reg.register(FunctionSpec(spec.name, (), "bool", lambda a: "", _contactable_sql, _contactable_live))
    with pytest.raises(ValueError, match="word of the segment language"):
        reg.register(FunctionSpec("count", (), "bool", lambda a: "", _contactable_sql, _contactable_live))


def test_unregistered_function_in_a_json_tree_fails_at_evaluation() -> None:
    from takt.segments.ast import Call, CallCondition
    from takt.segments.errors import SegmentError

    with pytest.raises(SegmentError, match="unknown function 'no_such_score'"):  # takt.models registers score
        evaluate(CallCondition(Call("no_such_score", ("x",))), FIXTURE_VIEWS[0], NOW)
