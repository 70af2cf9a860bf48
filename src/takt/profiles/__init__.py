"""Profiles: one living profile per person, a pure fold over the event log.

* :mod:`takt.profiles.projector`: ``Projector`` (identity + profile fold over ``StoredEvent``s, derived events,
  snapshots, change tracking).
* :mod:`takt.profiles.fold`: ``fold_event``, the per-event fold (traits, contact points, stats, touchpoints,
  interests) with a dispatch table per kind and track event name.
* :mod:`takt.profiles.interests`: interest keys, weights and exponential decay.
* :mod:`takt.profiles.touchpoints`: channel detection and hour of week.
* :mod:`takt.profiles.derived`: the ``interest_shifted`` event and its deterministic messageId.
* :mod:`takt.profiles.state`, :mod:`takt.profiles.view`: the JSON-able state and the API shape.
* :mod:`takt.profiles.lookup`: reading events back for a re-fold (memory or the event log).
* :mod:`takt.profiles.config`: the ``profiles.*`` and ``interests.*`` settings.

See ``docs/profiles.md``.
"""
