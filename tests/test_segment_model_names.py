"""Unknown names fail loudly (issue 12.4): ``score("…")`` names a model with scores, ``clv("…")`` a CLV figure
of a workspace that has CLV; otherwise an error with "did you mean" or with what to run."""

from __future__ import annotations

import numpy as np
import pytest

from takt.clock import FixedClock
from takt.models.clv import segment as clv_segment
from takt.models.clv.store import FITS, FITS_DDL, SCORE_COLUMNS, SCORES, SCORES_DDL
from takt.models.offers._db import Sql
from takt.models.registry import ModelRecord
from takt.models.scoring import registry_of
from takt.profiles.config import ProfileConfig
from takt.projections.runner import ProfileRunner
from takt.projections.tables import live_view
from takt.segments import SegmentError, Vocabulary, evaluate, parse, to_sql
from takt.workspace import open_workspace
from tests.test_cli_segments import NOW, run, ws  # noqa: F401  (the workspace fixture)


def _ids(path: object) -> list[str]:
    with open_workspace(path).open_storage() as s:  # type: ignore[arg-type]
        runner = ProfileRunner(s, ProfileConfig(), FixedClock(NOW))
        runner.catch_up()
        return sorted(runner.profile_ids())


def _count(out: str) -> int:
    return int(out.split()[0])


def test_score_of_an_unknown_or_untrained_model_is_an_error(ws) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    code, out = run(ws, "count", 'score("churn") > 0.5', "--at", NOW.isoformat())
    assert code != 0 and "unknown model 'churn'" in out and "churn_30d" in out, out
    code, out = run(ws, "count", 'score("churn_30d") > 0.5', "--at", NOW.isoformat())
    assert code != 0 and "no scores yet" in out and "takt models train --targets churn_30d" in out, out
    # a declared target is known too (settings), and a stored segment is checked the same way
    code, out = run(ws, "create", "leaving", 'score("chrun_30d") > 0.5')
    assert code != 0 and "did you mean 'churn_30d'" in out, out
    # once scored, the model is usable and matches who scores above the threshold
    ids = _ids(ws)
    with open_workspace(ws).open_storage() as s:
        registry_of(s).register(ModelRecord("churn_30d", {"name": "churn_30d"}, "accepted", 30, NOW))
    code_before, out_before = run(ws, "count", 'score("churn_30d") > 0.5', "--at", NOW.isoformat())
    with open_workspace(ws).open_storage() as s:
        registry_of(s).write_scores("churn_30d", 1, ids, np.linspace(0, 1, len(ids)), NOW)
    # accepted but not scored yet: still says what to run
    assert code_before != 0 and "no scores yet" in out_before, out_before
    code, out = run(ws, "count", 'score("churn_30d") > 0.5', "--at", NOW.isoformat())
    assert code == 0 and _count(out) == sum(1 for v in np.linspace(0, 1, len(ids)) if v > 0.5), out
    code, out = run(ws, "count", 'score("churn_3d") > 0.5', "--at", NOW.isoformat())
    assert code != 0 and "did you mean 'churn_30d'" in out, out
    # the escape hatch stays
    code, out = run(ws, "create", "later", 'score("purchase_30d:category:kayaks") > 0.5', "--allow-unknown-names")
    assert code == 0, out


def test_clv_in_segments(ws) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    code, out = run(ws, "count", "clv > 500", "--at", NOW.isoformat())
    assert code != 0 and "clv is a function" in out and 'clv("value") > 500' in out, out
    code, out = run(ws, "count", 'clv("valeu") > 500', "--at", NOW.isoformat())
    assert code != 0 and "did you mean 'value'" in out, out
    code, out = run(ws, "count", 'clv("value") > 500', "--at", NOW.isoformat())
    assert code != 0 and "no CLV is stored" in out and "takt clv score" in out, out
    ids = _ids(ws)
    values = {pid: (100.0 * i, 1.0 / (i + 1)) for i, pid in enumerate(ids)}
    with open_workspace(ws).open_storage() as s:
        sql = Sql(s)
        sql.ensure(SCORES, SCORES_DDL)
        sql.ensure(FITS, FITS_DDL)
        with sql.transaction() as tx:
            tx.execute(f"INSERT INTO {FITS} VALUES (1, ?, ?, '{{}}')", [NOW, len(values)])
            for pid, (value, alive) in values.items():
                row = {c: 0.0 for c in SCORE_COLUMNS} | {"clv": value, "p_alive": alive}
                tx.execute(f"INSERT INTO {SCORES} VALUES (?, 1, {', '.join('?' for _ in SCORE_COLUMNS)})",
                           [pid, *(row[c] for c in SCORE_COLUMNS)])
    for definition, expected in [('clv("value") > 250', {p for p, (v, _) in values.items() if v > 250}),
                                 ('clv("p_alive") < 0.3', {p for p, (_, a) in values.items() if a < 0.3}),
                                 ('clv("value") > 250 and clv("p_alive") < 0.3',
                                  {p for p, (v, a) in values.items() if v > 250 and a < 0.3})]:
        assert expected, definition
        code, out = run(ws, "count", definition, "--at", NOW.isoformat())
        assert code == 0 and _count(out) == len(expected), (definition, out)
        # live evaluation agrees
        with open_workspace(ws).open_storage() as s:
            clv_segment.attach(s)
            try:
                runner = ProfileRunner(s, ProfileConfig(), FixedClock(NOW))
                runner.catch_up()
                live = {pid for pid in ids if evaluate(parse(definition), live_view(runner, pid), NOW)}  # type: ignore[arg-type]
            finally:
                clv_segment.attach(None)
        assert live == expected, definition


def test_the_checks_need_a_vocabulary() -> None:
    vocab = Vocabulary(models=frozenset({"churn_30d"}), untrained_models=frozenset({"unsubscribe_30d"}),
                       clv_saved=True)
    parse('score("churn_30d") > 0.5 and clv("expected_purchases") >= 2', vocabulary=vocab)
    with pytest.raises(SegmentError, match="no scores yet"):
        parse('score("unsubscribe_30d") > 0.5', vocabulary=vocab)
    with pytest.raises(SegmentError, match="unknown model"):
        parse('score("x") > 0.5', vocabulary=vocab)
    # without a vocabulary (a workspace without profiles, --allow-unknown-names) any name goes
    parse('score("x") > 0.5 and clv("value") > 1')
    with pytest.raises(SegmentError, match="CLV has no figure 'clv'"):
        parse('clv("clv") > 1')  # the figures are fixed: checked always


@pytest.mark.parametrize("dialect", ["duckdb", "postgres", "spark"])
def test_clv_compiles_on_every_dialect(dialect: str) -> None:
    sql = to_sql(parse('clv("value") > 500'), now=NOW, dialect_name=dialect)
    assert "clv_scores" in sql and "500" in sql


def test_declared_targets_are_known_before_training(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from takt.models.vocabulary import model_vocabulary
    from takt.storage.duckdb import DuckDBStorage

    storage = DuckDBStorage(tmp_path / "t.duckdb")
    try:
        settings = {"models.horizon_days": 14, "models.discover": False,
                    "models.targets": [{"name": "plan_upgrade", "event": "Plan Upgraded"}]}
        names = model_vocabulary(storage, settings)
        assert names["models"] == frozenset() and names["untrained_models"] == {"plan_upgrade"}
        assert names["clv_saved"] is False
        with pytest.raises(SegmentError, match="no scores yet") as e:
            parse('score("plan_upgrade") > 0.5', vocabulary=Vocabulary(**names))
        assert "takt models train --targets plan_upgrade" in e.value.hint
        discovered = model_vocabulary(storage, {**settings, "models.discover": True})
        assert {"churn_14d", "unsubscribe_14d", "service_case_14d"} <= discovered["untrained_models"]
    finally:
        storage.close()
