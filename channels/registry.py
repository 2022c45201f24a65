"""Channel types and their connectors: the one place that knows which types exist."""

from channels import api, telegram, webchat, webhook
from channels.contract import Connector, Traits

CONNECTORS: dict[str, Connector] = {
    c.type: c for c in (api.CONNECTOR, webchat.CONNECTOR, webhook.CONNECTOR, telegram.CONNECTOR)
}
TYPES = tuple(CONNECTORS)


def connector(channel_type: str) -> Connector:
    """The connector of a channel type; KeyError for a type without one."""
    return CONNECTORS[channel_type]


def traits(channel_type: str) -> Traits:
    """What a channel type is like; an unknown type is treated as a plain messenger."""
    found = CONNECTORS.get(channel_type)
    return found.traits if found is not None else Traits()


def delivers(channel_type: str) -> bool:
    """Messages to this channel's clients are sent by openlines (not read through the API)."""
    found = CONNECTORS.get(channel_type)
    return found is not None and found.send is not None
