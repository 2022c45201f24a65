"""The ``webchat`` channel: a chat widget on the line's website.

Connecting it returns the one ``<script>`` tag a site owner pastes (``snippet``): it loads
``<OPENLINES_PUBLIC_URL>/widget/<code>.js``, which opens the chat in an iframe served by
openlines. The channel's ``code`` (its id and a random part) names it in those URLs, so
channel ids cannot be walked. Visitors write and read through the widget's own routes
(``channels.webchat.endpoints``), proven by a visitor token (``channels.webchat.visitors``);
the stored message is the delivery, as for the ``api`` channel.
"""

import secrets
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from channels.contract import Connector, Server, Traits
from core.config import Settings

# A site's origin as browsers send it: scheme, host and port, no path, lower case.
Origin = Annotated[
    str,
    StringConstraints(
        max_length=255,
        pattern=r"^https?://[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$",
    ),
]


class WebchatConfig(BaseModel):
    """What an admin gives when connecting a web chat (strict: ``0`` is not ``false``)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    # Pages of these origins may show the widget (CORS and the iframe's frame-ancestors).
    allowed_origins: Annotated[list[Origin], Field(min_length=1, max_length=20)]
    title: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = Field(
        None, description="The widget's title; the line's name when left out"
    )
    colour: Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")] = "#1f6feb"
    position: Literal["right", "left"] = "right"
    working_hours_only: bool = Field(
        False, description="Show the widget only during the line's working hours"
    )
    prechat_form: bool = Field(
        False, description="Ask the visitor's name, email and phone before the first message"
    )


def channel_code(channel_id: int, config: dict[str, Any]) -> str:
    """How the widget's URLs name the channel: ``<id>-<random part>``."""
    return f"{channel_id}-{config['code']}"


def parse_code(code: str) -> tuple[int, str] | None:
    """(channel id, random part) of a widget code, or None when it is not one."""
    channel_id, _, part = code.partition("-")
    if not channel_id.isascii() or not channel_id.isdigit() or len(channel_id) > 10 or not part:
        return None
    return int(channel_id), part


async def connect(config: BaseModel, server: Server) -> dict[str, Any]:
    """The config to store: as given, plus the random part of the channel's code."""
    return {**config.model_dump(mode="json"), "code": secrets.token_urlsafe(12)}


def snippet(channel_id: int, config: dict[str, Any], settings: Settings) -> str:
    """The tag a site owner pastes into their pages."""
    url = f"{settings.public_url.rstrip('/')}/widget/{channel_code(channel_id, config)}.js"
    return f'<script src="{url}" async></script>'


TRAITS = Traits(rates_by_buttons=True, writes_back=False, crm_source="WEB", visitor_tokens=True)
CONNECTOR = Connector(
    type="webchat", config_model=WebchatConfig, connect=connect, snippet=snippet, traits=TRAITS
)
