"""Channel types and their connectors: the one place that knows which types exist."""

from channels import api, telegram, webhook
from channels.contract import Connector, Traits

CONNECTORS: dict[str, Connector] = {
    c.type: c for c in (api.CONNECTOR, webhook.CONNECTOR, telegram.CONNECTOR)
}
# Known to the API but without a connector yet (refused at connection with 422); their
# traits already shape ratings and the CRM for dialogs filed on them.
PLANNED: dict[str, Traits] = {
    "webchat": Traits(rates_by_buttons=True, writes_back=False, crm_source="WEB"),
}
TYPES = (*CONNECTORS, *PLANNED)


def connector(channel_type: str) -> Connector:
    """The connector of a channel type; KeyError for a type without one."""
    return CONNECTORS[channel_type]


def traits(channel_type: str) -> Traits:
    """What a channel type is like; an unknown type is treated as a plain messenger."""
    found = CONNECTORS.get(channel_type)
    if found is not None:
        return found.traits
    return PLANNED.get(channel_type, Traits())


def delivers(channel_type: str) -> bool:
    """Messages to this channel's clients are sent by openlines (not read through the API)."""
    found = CONNECTORS.get(channel_type)
    return found is not None and found.send is not None
