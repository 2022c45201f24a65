"""What every channel connector provides, and what outbound delivery hands it.

A connector is plain data holding functions (``Connector``): the registry maps a channel
type to one. Inbound, each connector's endpoint verifies and parses its payload into
``core.inbound.InboundMessage`` and files it through the one filing path. Outbound, the
delivery activity builds an ``Outgoing`` (the message as the client should see it) and calls
the connector's ``send``, which answers ``Sent`` or raises ``DeliveryError``.
"""

import builtins
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel

from core.config import Settings


class Sender(BaseModel):
    """Who the client sees as the sender (``queue.operator_display`` applied)."""

    name: str
    avatar_url: str | None = None
    position: str | None = None


class Outgoing(BaseModel):
    """One message to the client, as the connector sends it."""

    message_id: int
    dialog_id: int
    chat_external_id: str
    text: str
    sender: Sender
    created_at: datetime
    # The rating request: channels with buttons show like / dislike instead of "1 or 0".
    rating_request: bool = False


class Sent(BaseModel):
    """The channel took the message; ``external_id`` is its id there, if it has one."""

    external_id: str | None = None


class DeliveryError(Exception):
    """The channel did not take the message.

    ``permanent``: sending again will not help (a blocked bot, a 4xx); the message is marked
    failed at once. Otherwise it is retried, after ``retry_after`` seconds when the channel
    said how long to wait (a 429), else with backoff.
    """

    def __init__(
        self, reason: str, *, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after


@dataclass(frozen=True)
class Target:
    """The channel a message goes out on: its stored config and its live secrets (the
    current one first; the previous one too during a rotation's grace). ``allow_private``:
    URLs users gave may lead to private addresses (``core.egress``)."""

    channel_id: int
    config: dict[str, Any]
    secrets: tuple[str, ...]
    allow_private: bool = False


Send = Callable[[Target, Outgoing, httpx.AsyncClient], Awaitable[Sent]]


@dataclass(frozen=True)
class Server:
    """What a connector's connection hooks get from the server: its settings, an HTTP
    client, and the channel's id (its inbound URL names it)."""

    settings: Settings
    http: httpx.AsyncClient
    channel_id: int


class ConnectFailed(Exception):
    """The channel's service refused or could not be reached at connection (or in a health
    check, or fetching an attachment). ``field``: the config field at fault (a 422 naming
    it); ``unavailable``: the service did not answer or failed on its side, try again after
    ``retry_after`` seconds (a 503). ``reason`` holds no secret."""

    def __init__(
        self,
        reason: str,
        *,
        field: str | None = None,
        unavailable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field
        self.unavailable = unavailable
        self.retry_after = retry_after


# The validated config an admin gave -> the config to store (after registering with the
# channel's service); raises ``ConnectFailed``.
Connect = Callable[[BaseModel, Server], Awaitable[dict[str, Any]]]
# The stored config -> nothing (unregister, best effort: the caller logs a failure).
Disconnect = Callable[[dict[str, Any], Server], Awaitable[None]]
# The stored config -> the channel's state at its service; raises ``ConnectFailed``.
Health = Callable[[dict[str, Any], Server], Awaitable[dict[str, Any]]]


class Fetched(BaseModel):
    """A file a client sent, fetched from the channel's service."""

    content: bytes
    media_type: str | None = None


# The stored config and an attachment's ``ref`` -> the file; raises ``ConnectFailed``.
FetchAttachment = Callable[[dict[str, Any], str, Server], Awaitable[Fetched]]
# The stored config -> the config ``send`` gets: the server's settings it needs added.
SendConfig = Callable[[dict[str, Any], Settings], dict[str, Any]]
# The channel's id and stored config -> what a site owner pastes into their pages.
Snippet = Callable[[int, dict[str, Any], Settings], str]


@dataclass(frozen=True)
class Traits:
    """What a channel type is like, where the rest of openlines must treat types apart."""

    # The client rates with like / dislike buttons only (the web chat widget): its rating
    # texts are the widget texts, and a "1" or "0" it sends is plain text, not a rating.
    rates_by_buttons: bool = False
    # A chat on it lets the line write to the client again later (a messenger); a web chat
    # visitor who leaves the page is gone unless they left a phone or an email.
    writes_back: bool = True
    # Bitrix24's SOURCE_ID for leads from it (None: OTHER, with the type as description).
    crm_source: str | None = None
    # Clients' messages come through ``POST /v1/channels/{id}/messages`` (the inbound API
    # body); other types have their own endpoint.
    files_through_api: bool = False
    # That endpoint's requests are signed (``X-Openlines-Signature``) rather than carrying
    # the channel secret as a bearer token; the receiver may post delivery receipts.
    signed: bool = False
    # Clients prove themselves with a visitor token the server signed (the web chat), as
    # well as with the channel secret.
    visitor_tokens: bool = False


@dataclass(frozen=True)
class Connector:
    """A channel type. ``send`` None: the stored message is the delivery (the ``api``
    channel's clients read the dialog's messages)."""

    type: str
    # Validates the config an admin gives at connection (unknown keys refused).
    config_model: builtins.type[BaseModel]  # (``type`` above is the field)
    send: Send | None = None
    # Config keys that are secrets: stored, never shown in reads.
    hidden_config: frozenset[str] = frozenset()
    # Hooks for a channel registered at a service (none: the config is stored as given).
    connect: Connect | None = None
    disconnect: Disconnect | None = None
    health: Health | None = None
    send_config: SendConfig | None = None
    # Attachments' files are fetched through openlines (None: the ``ref`` is all it has).
    fetch_attachment: FetchAttachment | None = None
    # The HTML a site pastes to show the channel (the web chat's script tag), in reads.
    snippet: Snippet | None = None
    traits: Traits = Traits()
