"""The delivery interface the orchestrator sends through.

A :class:`Channel` sends one :class:`~takt.campaigns.model.OutboundMessage` and answers a
:class:`~takt.campaigns.model.DeliveryResult`; it never raises for a delivery problem (a refused address, a
provider down): that is a result. :class:`Deliveries` holds the workspace's channels, built from its settings.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

from takt.campaigns.model import DeliveryResult, OutboundMessage
from takt.errors import TaktError


class Channel(ABC):
    """One way out (``email`` over SMTP, ``sms`` through a webhook …). Thread-safe: the orchestrator may send
    from several threads; a channel reuses its connections and enforces its own rate limit."""

    name: str

    @abstractmethod
    def send(self, message: OutboundMessage) -> DeliveryResult: ...

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""


class Deliveries:
    """The channels configured for a workspace, by channel name."""

    def __init__(self, channels: Mapping[str, Channel]) -> None:
        self._channels = dict(channels)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._channels)

    def channel(self, name: str) -> Channel:
        try:
            return self._channels[name]
        except KeyError:
            raise TaktError(f"no delivery is configured for channel {name!r} "
                            f"(configured: {', '.join(self._channels) or 'none'})",
                            code="channel_not_configured", status=409) from None

    def close(self) -> None:
        for ch in self._channels.values():
            ch.close()
