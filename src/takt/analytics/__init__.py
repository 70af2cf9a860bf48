"""Touchpoint analytics: which touchpoints a group of people uses, for what and when; the paths that precede a
goal event; and the attribution of goal events to touchpoints under five models, side by side.

Every analysis is one or a few SQL queries built as sqlglot trees over the segment contract tables
(``profile_events`` with its ``touchpoint``, ``hour_of_week``, …; ``docs/analytics.md``), so the same code runs
on DuckDB, PostgreSQL and Spark (:mod:`takt.analytics.engine`); Python only reshapes the aggregated rows (and
solves the Markov chain from transition counts). Groups smaller than ``analytics.min_group_size`` people are
suppressed (:mod:`takt.analytics.privacy`).

The package imports nothing itself: ``takt.analytics.config`` registers settings at every start of takt, which
must not import the analyses (and numpy) with it. Import from the modules: ``takt.analytics.attribution``,
``.paths``, ``.touchpoints``, ``.scope``, ``.config``, ``.engine``.
"""
