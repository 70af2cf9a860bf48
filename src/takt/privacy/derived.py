"""What takt derived from profiles and keeps by profile id, deleted for erased profiles: live segment
memberships, model scores, CLV rows, contactability rows. (Each table's owner module holds its SQL.)"""

from __future__ import annotations

from collections.abc import Sequence

from takt.storage.base import Storage


def forget_profiles(storage: Storage, profile_ids: Sequence[str]) -> None:
    """Delete every row derived from these profiles (idempotent; tables never created are skipped)."""
    from takt.models.clv.store import delete_profiles as delete_clv
    from takt.models.registry import Registry
    from takt.policy.segment_functions import table_of
    from takt.segments.live import attached

    ids = sorted(set(profile_ids))
    if not ids:
        return
    live = attached(storage)
    if live is not None:
        live.forget(ids)
    Registry(storage).delete_profiles(ids)
    delete_clv(storage, ids)
    table_of(storage).replace([], ids)
