"""Running compiled segment SQL on Apache Spark (the ``spark`` extra), over the Parquet export of a workspace.

``spark_session()`` starts local mode by default; point it at a cluster with ``master`` (e.g.
``spark://host:7077``, or ``yarn``) and an export directory every executor can read (HDFS, S3, a shared
mount). See ``docs/segments.md``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

SPARK_TABLES = ("profiles", "profile_traits", "profile_interests", "profile_touchpoints", "profile_events")


def spark_session(master: str = "local[2]") -> Any:
    try:
        from pyspark.sql import SparkSession
    except ModuleNotFoundError:
        from takt.errors import TaktError

        raise TaktError("the spark engine needs the spark extra: pip install 'takt[spark]' (and Java 17+)",
                        code="missing_extra") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session = (
            SparkSession.builder.master(master).appName("takt")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.shuffle.partitions", "2")
            .getOrCreate()
        )
    session.sparkContext.setLogLevel("ERROR")
    return session


def register_parquet(session: Any, directory: Path) -> None:
    """Make the exported tables visible to Spark SQL under their contract names."""
    for table in SPARK_TABLES:
        session.read.parquet(str(directory / f"{table}.parquet")).createOrReplaceTempView(table)


def spark_members(session: Any, sql: str) -> set[str]:
    """The ``profile_id`` values the compiled (spark-dialect) query selects."""
    return {row[0] for row in session.sql(sql).collect()}
