"""Where the orchestrator runs: beside the profile runner of ``takt worker`` and ``takt serve`` (DuckDB), fed by
the live log. A :class:`Wake` listener of the runner wakes the orchestrator's own thread after each folded chunk
and tick; the listener returns at once (no events, no I/O), so the projector never waits on a channel."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from takt.campaigns.delivery.base import Deliveries
from takt.campaigns.model import Campaign
from takt.campaigns.orchestrator import CampaignSource, Orchestrator
from takt.campaigns.unsubscribe_headers import one_click_headers
from takt.clock import Clock
from takt.events.model import Event


class Wake:
    """A runner listener (``projections.runner.Listener``) that only wakes the orchestrator."""

    locks_itself = True

    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator

    def on_changes(self, runner: Any, touched: list[str], dropped: list[str]) -> list[Event]:
        self.orchestrator.wake()
        return []

    def on_tick(self, runner: Any, now: datetime) -> list[Event]:
        self.orchestrator.wake()
        return []


def attach(storage: Any, runner: Any, settings: Any, deliveries: Deliveries, campaigns: CampaignSource,
           latest: Callable[[str], Campaign | None], clock: Clock, *, base_url: str | None = None,
           threads: int = 4, every_s: float = 1.0) -> Orchestrator:
    """Build the workspace's orchestrator, wake it from the runner, start its thread. The caller stops it
    (:meth:`Orchestrator.stop`) before closing the storage."""
    from takt.policy.config import PolicySettings
    from takt.policy.suppression_store import suppression_key

    orch = Orchestrator(storage, runner, deliveries, PolicySettings.from_settings(settings, suppression_key(storage)),
                        campaigns, clock, headers=one_click_headers(storage, settings, base_url), threads=threads,
                        latest=latest)
    runner.add_listener(Wake(orch))
    orch.start(every_s)
    return orch


def attach_workspace(storage: Any, runner: Any, settings: Any, deliveries: Deliveries, clock: Clock, *,
                     base_url: str | None = None) -> Orchestrator:
    """:func:`attach` with the workspace's campaign store as the source of campaigns (``takt serve`` and
    ``takt worker``): a version as stored, and a campaign's newest live version (``None`` once archived)."""
    from takt.campaigns.store import campaign_store
    from takt.errors import TaktError

    store = campaign_store(storage)

    def version(name: str, number: int) -> Campaign | None:
        try:
            return store.get(name, number).campaign()
        except TaktError:
            return None

    def latest(name: str) -> Campaign | None:
        try:
            return store.get(name).campaign()
        except TaktError:
            return None

    return attach(storage, runner, settings, deliveries, version, latest, clock, base_url=base_url)
