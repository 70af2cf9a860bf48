"""The contact-policy settings of one workspace: the one way every route, command and listener builds them.

:class:`~takt.policy.config.PolicySettings` needs the workspace's settings *and* its suppression key (a secret
kept in the workspace's store, see :mod:`takt.policy.suppression_store`); built without the key, any check of
a suppressed contact point fails. :func:`policy_settings` joins the two.
"""

from __future__ import annotations

from dataclasses import replace

from takt.policy.config import PolicySettings
from takt.policy.suppression_store import suppression_key
from takt.settings import Settings
from takt.storage.base import Storage


def policy_settings(storage: Storage, settings: Settings | PolicySettings) -> PolicySettings:
    """``settings`` (the workspace's :class:`~takt.settings.Settings`, or policy settings already made) with the
    storage's suppression key (kept when the policy settings already carry one)."""
    policy = settings if isinstance(settings, PolicySettings) else PolicySettings.from_settings(settings)
    if policy.suppression_key:
        return policy
    return replace(policy, suppression_key=suppression_key(storage))
