"""``--engine spark``: the factory's training distributed one target per Spark task (the ``spark`` extra).

The driver computes features, labels and baselines once (:func:`takt.models.factory.build_data`) and
broadcasts them; a DataFrame with one row per target is grouped by target and each group is trained by
``applyInPandas`` with the same :func:`~takt.models.factory.fit_and_evaluate` the local engine runs (one thread
per task: Spark supplies the parallelism). The task returns its outcome as JSON; the driver registers it.
A target whose task raises is returned as failed and does not stop the others. The workers need takt and
LightGBM: locally they run this interpreter; on a cluster install ``takt`` on the executors (or point
``PYSPARK_PYTHON`` at an environment that has it).
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from dataclasses import asdict
from typing import Any

import numpy as np

from takt.models.factory import FactoryConfig, Outcome, TrainingData, fit_and_evaluate
from takt.models.targets import Target


def _outcome_json(o: Outcome) -> str:
    d = asdict(o)
    d["target"] = o.target.to_json()
    return json.dumps(d)


def _outcome(text: str) -> Outcome:
    d = json.loads(text)
    d["target"] = Target.from_json(d["target"])
    return Outcome(**d)


def use_this_python() -> None:
    """Spark's Python workers run this interpreter (which has takt and LightGBM) unless ``PYSPARK_PYTHON`` says
    otherwise; it takes effect for sessions created afterwards."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def train_spark(data: TrainingData, config: FactoryConfig, master: str = "local[2]",
                session: Any | None = None) -> list[Outcome]:
    from takt.segments.spark import spark_session

    use_this_python()
    spark = session or spark_session(master)
    payload = {
        "X_train": data.train.X, "X_valid": data.valid.X,
        "y_train": data.y_train, "y_valid": data.y_valid, "base": data.baseline_valid,
        "targets": {t.name: t.to_json() for t in data.targets}, "config": config,
    }
    shared = spark.sparkContext.broadcast(payload)

    def train_group(pdf: Any) -> Any:
        import time

        import pandas as pd

        p = shared.value
        rows = []
        for name in pdf["target"].tolist():
            t = Target.from_json(p["targets"][name])
            started = time.perf_counter()
            try:
                o = fit_and_evaluate(t, p["X_train"], np.asarray(p["y_train"][name]), p["X_valid"],
                                     np.asarray(p["y_valid"][name]), np.asarray(p["base"][name]), p["config"],
                                     threads=1, engine="spark")
            except Exception as e:  # reported per target
                o = Outcome(t, "failed", f"{type(e).__name__}: {e}", seconds=time.perf_counter() - started,
                            engine="spark")
            rows.append({"target": name, "outcome": _outcome_json(o)})
        return pd.DataFrame(rows, columns=["target", "outcome"])

    names = [t.name for t in data.targets]
    df = spark.createDataFrame([(n,) for n in names], "target string").repartition(max(1, len(names)), "target")
    with warnings.catch_warnings():  # pyspark warns about the pandas version and untyped functions
        warnings.simplefilter("ignore")
        grouped = df.groupBy("target").applyInPandas(train_group, schema="target string, outcome string")
        result = grouped.collect()
    by_name = {r["target"]: _outcome(r["outcome"]) for r in result}
    shared.unpersist()
    return [by_name[n] for n in names]
