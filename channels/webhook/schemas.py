"""The webhook channel's config and the body of what it POSTs to the receiver."""

from datetime import UTC, datetime
from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict

from channels.contract import Outgoing


class WebhookConfig(BaseModel):
    """What an admin gives when connecting a webhook channel: where to POST messages."""

    model_config = ConfigDict(extra="forbid")
    url: AnyHttpUrl  # http or https only


class WebhookSender(BaseModel):
    """Who the client sees as the sender."""

    name: str
    avatar_url: str | None
    position: str | None


class WebhookMessage(BaseModel):
    """The JSON body of one outbound POST: a message for the client.

    Its own model, not ``Outgoing`` itself, so the wire format receivers rely on does not
    change when the connector contract does.
    """

    event: Literal["message.created"] = "message.created"
    dialog_id: int
    chat_external_id: str
    message_id: int
    text: str
    sender: WebhookSender
    created_at: datetime  # ISO 8601 with an offset in the JSON
    rating_request: bool

    @classmethod
    def of(cls, outgoing: Outgoing) -> "WebhookMessage":
        """The body for ``outgoing``; a naive ``created_at`` is taken as UTC (as stored)."""
        created_at = outgoing.created_at
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=UTC)
        return cls(
            dialog_id=outgoing.dialog_id,
            chat_external_id=outgoing.chat_external_id,
            message_id=outgoing.message_id,
            text=outgoing.text,
            sender=WebhookSender(
                name=outgoing.sender.name,
                avatar_url=outgoing.sender.avatar_url,
                position=outgoing.sender.position,
            ),
            created_at=created_at,
            rating_request=outgoing.rating_request,
        )
