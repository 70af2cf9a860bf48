"""Touchpoint analytics: which touchpoints a group of people uses, for what and when; the paths that precede a
goal event; and the attribution of goal events to touchpoints under five models, side by side.

Every analysis is one or a few SQL queries built as sqlglot trees over the segment contract tables
(``profile_events`` with its ``touchpoint``, ``hour_of_week``, …; ``docs/analytics.md``), so the same code runs
on DuckDB, PostgreSQL and Spark (:mod:`takt.analytics.engine`); Python only reshapes the aggregated rows (and
solves the Markov chain from transition counts). Groups smaller than ``analytics.min_group_size`` people are
suppressed (:mod:`takt.analytics.privacy`).
"""

from takt.analytics.attribution import attribution
from takt.analytics.config import AnalyticsConfig
from takt.analytics.engine import Engine, SessionEngine, SparkEngine
from takt.analytics.paths import paths
from takt.analytics.scope import Scope
from takt.analytics.touchpoints import touchpoints

__all__ = ["AnalyticsConfig", "Engine", "Scope", "SessionEngine", "SparkEngine", "attribution", "paths",
           "touchpoints"]
