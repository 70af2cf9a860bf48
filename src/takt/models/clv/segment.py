"""``clv("…")`` in segments: a profile's stored customer lifetime value figures (``takt clv score``).

``clv("value") > 500``, ``clv("p_alive") < 0.3``, ``clv("expected_purchases") >= 2``,
``clv("expected_spend") > 50``: numbers from the latest saved fit (BG/NBD × Gamma-Gamma), missing — so every
comparison is false — for a profile without one. In SQL a correlated subquery on ``clv_scores``; live, a read of
the same row through the storage attached with :func:`attach`. Importing this module registers the function.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlglot import exp

from takt.models.clv.store import SCORES, ClvReader
from takt.segments.ast import Value
from takt.segments.errors import did_you_mean
from takt.segments.functions import FUNCTIONS, FunctionContext, FunctionSpec, Problem
from takt.segments.view import ProfileView
from takt.segments.vocabulary import Vocabulary
from takt.services import services_of
from takt.storage.base import Storage

FIELDS = {"value": "clv", "p_alive": "p_alive", "expected_purchases": "expected_purchases",
          "expected_spend": "expected_spend"}
"""The language's names of the CLV figures → their columns in ``clv_scores``."""
WORDS = {"value": "customer lifetime value", "p_alive": "probability of being alive (still a customer)",
         "expected_purchases": "expected number of purchases", "expected_spend": "expected spend per order"}

_live: list[ClvReader] = []


def attach(storage: Storage | None) -> None:
    """Live segment evaluation reads CLV from this storage (``None``: from none)."""
    _live.clear()
    if isinstance(storage, Storage):
        _live.append(services_of(storage).clv)


def _check(args: tuple[Value, ...], vocabulary: Vocabulary) -> Problem | None:
    field = str(args[0])
    if field not in FIELDS:
        return f"CLV has no figure {field!r}", did_you_mean(field, FIELDS) or "one of " + ", ".join(FIELDS)
    if vocabulary.clv_saved is False:
        return "no CLV is stored in this workspace yet", "compute it: takt clv score"
    return None


def _compile(args: tuple[Value, ...], ctx: FunctionContext) -> exp.Expression:
    s = "cv"
    column = FIELDS.get(str(args[0]), "clv")
    where = exp.EQ(this=exp.column("profile_id", s), expression=ctx.profile_id)
    return exp.Subquery(this=exp.select(exp.Max(this=exp.column(column, s)))
                        .from_(exp.to_table(SCORES).as_(s)).where(where))


def _evaluate(args: tuple[Value, ...], view: ProfileView, now: datetime) -> Any:
    if not _live:
        return None
    row = _live[0].profile(view.profile_id)
    if row is None:
        return None
    return row.get(FIELDS.get(str(args[0]), "clv"))


CLV = FunctionSpec(
    name="clv",
    params=(("figure", "string"),),
    returns="number",
    explain=lambda args: WORDS.get(str(args[0]), f"CLV {args[0]}"),
    compile=_compile,
    evaluate=_evaluate,
    check=_check,
    example='clv("value") > 500',
)

if "clv" not in FUNCTIONS:
    FUNCTIONS.register(CLV)
