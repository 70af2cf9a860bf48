"""What differs between SQL engines, as small classes building sqlglot expressions (never strings)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlglot import exp

from takt.segments.semantics import NUMERIC_RE


class Dialect:
    name = ""
    """sqlglot's dialect name."""

    def json_text(self, doc: exp.Expression, path: tuple[str, ...]) -> exp.Expression:
        """The text form of the JSON value at ``path`` inside the JSON text ``doc`` (root when empty)."""
        jp = exp.JSONPath(expressions=[exp.JSONPathRoot(), *(exp.JSONPathKey(this=k) for k in path)])
        return exp.JSONExtractScalar(this=doc, expression=jp)

    def epoch(self, ts: exp.Expression) -> exp.Expression:
        """Seconds since 1970 as a double, with the fraction."""
        return exp.cast(exp.TimeToUnix(this=ts), exp.DataType.build("double"))

    def timestamp(self, t: datetime) -> exp.Expression:
        u = t.astimezone(UTC)  # (strftime's %Y gives year 1 as "1", which PostgreSQL reads as 2001)
        text = f"{u.year:04d}-{u:%m-%d %H:%M:%S.%f}+00:00"
        return exp.cast(exp.Literal.string(text), exp.DataType.build("timestamptz"))

    def numeric(self, text: exp.Expression) -> exp.Expression:
        """The number a text form denotes, or NULL when it is not a decimal number."""
        return exp.Case(
            ifs=[exp.If(this=exp.RegexpLike(this=text.copy(), expression=exp.Literal.string(NUMERIC_RE)),
                        true=exp.cast(text.copy(), exp.DataType.build("double")))]
        )

    def percentile(self, value: exp.Expression, q: float) -> exp.Expression:
        """The exact continuous percentile ``q`` (0–1) of ``value`` over a group (an aggregate)."""
        return exp.WithinGroup(this=exp.PercentileCont(this=exp.Literal.number(q)),
                               expression=exp.Order(expressions=[exp.Ordered(this=value, nulls_first=False)]))

    def sql(self, node: exp.Expression, pretty: bool = False) -> str:
        return node.sql(dialect=self.name, pretty=pretty)


class DuckDB(Dialect):
    name = "duckdb"

    def json_text(self, doc: exp.Expression, path: tuple[str, ...]) -> exp.Expression:
        # DuckDB reads a quoted path key with backslash escapes (``$."a\"b"``); sqlglot escapes the quote but
        # not the backslash, so a key ending in ``\`` (or holding ``\"``) would end the key early: escape it.
        return super().json_text(doc, tuple(k.replace("\\", "\\\\") for k in path))

    def epoch(self, ts: exp.Expression) -> exp.Expression:
        return exp.TimeToUnix(this=ts)


class Postgres(Dialect):
    name = "postgres"

    def json_text(self, doc: exp.Expression, path: tuple[str, ...]) -> exp.Expression:
        jsonb = exp.cast(doc, exp.DataType.build("jsonb"))
        where: exp.Expression = (
            exp.Array(expressions=[exp.Literal.string(k) for k in path]) if path else exp.Literal.string("{}")
        )
        return exp.JSONBExtractScalar(this=jsonb, expression=where)


class Spark(Dialect):
    name = "spark"

    def json_text(self, doc: exp.Expression, path: tuple[str, ...]) -> exp.Expression:
        # GET_JSON_OBJECT gives 'null' for a JSON null at the root (and NULL below it): wrap the document
        if not path:
            doc = exp.Concat(expressions=[exp.Literal.string('{"v":'), doc, exp.Literal.string("}")])
            path = ("v",)
        if not any("'" in k for k in path):
            return super().json_text(doc, path)
        # Spark's ['key'] cannot hold a quote (sqlglot's \' is read as part of the key), but .key can, when the
        # key has no . or [ in it; a key with both cannot be named in Spark at all: missing.
        if any(("." in k or "[" in k) for k in path if "'" in k):
            return exp.Null()
        jp = "$" + "".join(f".{k}" if "'" in k else f"['{k}']" for k in path)
        return exp.Anonymous(this="GET_JSON_OBJECT", expressions=[doc, exp.Literal.string(jp)])

    def epoch(self, ts: exp.Expression) -> exp.Expression:
        return exp.cast(ts, exp.DataType.build("double"))

    def percentile(self, value: exp.Expression, q: float) -> exp.Expression:
        # sqlglot writes PERCENTILE_APPROX for Spark; PERCENTILE is Spark's exact one (the same interpolation)
        return exp.Anonymous(this="PERCENTILE", expressions=[value, exp.Literal.number(q)])


DIALECTS: dict[str, Dialect] = {d.name: d for d in (DuckDB(), Postgres(), Spark())}


def dialect(name: str) -> Dialect:
    try:
        return DIALECTS[name]
    except KeyError:
        raise ValueError(f"unknown SQL dialect {name!r}; one of {', '.join(DIALECTS)}") from None
