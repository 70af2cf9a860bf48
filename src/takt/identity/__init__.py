"""Identity resolution: which identifiers (``type:value``) belong to one person.

* :mod:`takt.identity.identifiers`: normal forms and validation (``check_identifier``, ``parse_identifier``).
* :mod:`takt.identity.extract`: the identifiers an event carries (``identifiers_of``), anchor first.
* :mod:`takt.identity.resolver`: the deterministic fold (``IdentityGraph.resolve``) with merges, conflicts
  on unique types, unmerge, and snapshots.
* :mod:`takt.identity.kinds`: the ``record`` and ``identity.unmerge`` event kinds and their shapes.
* :mod:`takt.identity.config`: the ``identity.*`` settings.

See ``docs/profiles.md``.
"""
