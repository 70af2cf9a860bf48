"""Contact policy: the customer decides how and when they are contacted.

The pure core. :func:`decide` takes a :class:`PolicyPerson` (contact points with provenance, the folded consent
ledger, recent messages, touchpoints, preference, time zone, complaints, suppression hashes), an
:class:`Intent`, candidate channels, ``now`` and :class:`PolicySettings`, and returns a :class:`Decision` with
stable reason codes (:mod:`takt.policy.reasons`, listed in ``docs/policy.md``).

Modules: :mod:`~takt.policy.vocab` (purposes, channels, ...), :mod:`~takt.policy.consent` (the ``consent``
event kind and ledger), :mod:`~takt.policy.messages` (the ``message`` event kind), :mod:`~takt.policy.person`,
:mod:`~takt.policy.pressure`, :mod:`~takt.policy.suppression`, :mod:`~takt.policy.config` (settings) and
:mod:`~takt.policy.decide`.
"""

from takt.policy.config import PolicySettings
from takt.policy.consent import (
    ConsentLedger,
    ConsentRecord,
    ConsentState,
    MergeStep,
    consent_events_from_track,
    fold_consent,
    fold_consent_timeline,
    merge_ledgers,
    validate_consent,
)
from takt.policy.decide import Decision, Intent, decide
from takt.policy.messages import MessageRecord, fold_messages, validate_message
from takt.policy.person import ContactPoint, PolicyPerson
from takt.policy.reasons import REASONS, Reason
from takt.policy.suppression import contact_point_hash

__all__ = [
    "REASONS",
    "ConsentLedger",
    "ConsentRecord",
    "ConsentState",
    "ContactPoint",
    "Decision",
    "Intent",
    "MergeStep",
    "MessageRecord",
    "PolicyPerson",
    "PolicySettings",
    "Reason",
    "consent_events_from_track",
    "contact_point_hash",
    "decide",
    "fold_consent",
    "fold_consent_timeline",
    "fold_messages",
    "merge_ledgers",
    "validate_consent",
    "validate_message",
]
