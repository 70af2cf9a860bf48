"""Scores where the rest of takt reads them: ``score("model")`` in segments and ``scores`` in the profile JSON.

Importing this module registers both:

- the segment function ``score(name)`` — a number, the profile's latest batch score of the model (missing when
  the profile has none). In SQL it is a correlated subquery on ``model_scores`` (which lives beside the
  profile tables in the workspace's store); live it reads the same table through the registry attached with
  :func:`attach` (no registry attached: no score, so ``score("…") > 0.5`` is false);
- the profile section ``scores``: ``{model: {"score", "version", "scored_at"}}``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlglot import exp

from takt.models.registry import Registry
from takt.profiles.sections import register_section
from takt.segments.ast import Value
from takt.segments.errors import did_you_mean
from takt.segments.functions import FUNCTIONS, FunctionContext, FunctionSpec, Problem
from takt.segments.view import ProfileView
from takt.segments.vocabulary import Vocabulary
from takt.services import services_of
from takt.storage.base import Storage

SCORES_TABLE = "model_scores"

_live: list[Registry] = []


def registry_of(storage: Storage) -> Registry:
    """The registry of a storage (its tables created once per storage object)."""
    return services_of(storage).models


def attach(storage: Storage | None) -> None:
    """Live segment evaluation reads scores from this storage (``None``: from none)."""
    _live.clear()
    if storage is not None:
        _live.append(registry_of(storage))


def _compile(args: tuple[Value, ...], ctx: FunctionContext) -> exp.Expression:
    s = "sc"
    where = exp.and_(exp.EQ(this=exp.column("profile_id", s), expression=ctx.profile_id),
                     exp.EQ(this=exp.column("model", s), expression=exp.Literal.string(str(args[0]))), copy=False)
    return exp.Subquery(this=exp.select(exp.Max(this=exp.column("score", s)))
                        .from_(exp.to_table(SCORES_TABLE).as_(s)).where(where))


def _check(args: tuple[Value, ...], vocabulary: Vocabulary) -> Problem | None:
    """An unknown model is an error (it would match nobody, silently), with "did you mean"; a model that can
    be trained but has no scores yet is an error that says how to get them."""
    name = str(args[0])
    if vocabulary.models is None or name in vocabulary.models:
        return None
    train = f"takt models train --targets {name}, then takt models score"
    if name in vocabulary.untrained_models:
        return f"model {name!r} has no scores yet (it is not trained, or not scored)", f"train and score it: {train}"
    hint = did_you_mean(name, vocabulary.models | vocabulary.untrained_models)
    return f"unknown model {name!r}", hint or "`takt models list` and `takt models targets` name them"


def _evaluate(args: tuple[Value, ...], view: ProfileView, now: datetime) -> Any:
    if not _live:
        return None
    return _live[0].score(view.profile_id, str(args[0]))


SCORE = FunctionSpec(
    name="score",
    params=(("model", "string"),),
    returns="number",
    explain=lambda args: f"{args[0]} score",
    compile=_compile,
    evaluate=_evaluate,
    check=_check,
    example='score("churn_30d") > 0.5',
)

if "score" not in FUNCTIONS:
    FUNCTIONS.register(SCORE)


def scores_section(storage: Storage, profile: dict[str, Any], now: datetime) -> Any:
    """The ``scores`` key of a profile's JSON (left out when the profile has no score)."""
    pid = profile.get("id")
    if not isinstance(pid, str):
        return None
    rows = registry_of(storage).scores_of(pid)
    if not rows:
        return None
    return {m: {"score": round(s, 6), "version": v,
                "scored_at": at.astimezone(UTC).isoformat().replace("+00:00", "Z")} for m, v, s, at in rows}


register_section("scores", scores_section)
