"""Next-best-offer: an offer catalog (:mod:`.catalog`, :mod:`.store`) and a pure ranking (:mod:`.rank`).

See ``docs/offers.md``.
"""
