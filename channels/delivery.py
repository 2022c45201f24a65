"""Outbound delivery: every message to the client goes out through its chat's channel.

A message owed to the client (an operator's or bot's reply, an automatic text) is marked
``pending`` with an outbox row ``deliver`` in the transaction that makes it stand, so nothing
is lost if a process dies; the relay hands it to the chat's ``ChannelDeliveryWorkflow``, whose
``send`` activity sends it. Each attempt reads in one short transaction, sends with no
transaction open, and writes the outcome in another. Permanent errors mark the message
``failed`` at once; transient ones are retried by Temporal for hours (after the channel's
``retry_after`` when it gave one), then ``give_up`` marks it failed. A failed message adds a
note to the dialog (a message the client never sees) saying why. The ``api`` channel's
clients read the dialog's messages, so there a stored message is ``sent`` at once.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from channels import registry
from channels.contract import Connector, DeliveryError, Outgoing, Sent, Target
from channels.sender import sender_of
from channels.webhook.signing import live_secrets
from core.config import Settings
from core.events.publish import record
from core.line_settings import LineSettings
from core.metrics import SENDS
from core.models import NOTE, Channel, Chat, Dialog, Line, Message, Outbox

# Statuses past sending: a message in one of them is not sent again by a retried attempt.
SENT = ("sent", "delivered", "read")
HTTP_TIMEOUT_S = 15.0


def owe(session: AsyncSession, dialog: Dialog, message: Message) -> None:
    """The message stands and the client should get it: mark it and owe its delivery (once,
    however often the caller runs)."""
    if message.delivery_status is not None:
        return
    if not registry.delivers(dialog.channel_type):
        message.delivery_status = "sent"  # the client reads it through the API
        message.delivered_at = datetime.now(UTC)
        return
    message.delivery_status = "pending"
    session.add(Outbox(kind="deliver", dialog_id=dialog.id, message_id=message.id))


class DeliveryFailure(BaseModel):
    """The last attempt to deliver a message failed: why."""

    message_id: int
    reason: str


@dataclass(frozen=True)
class _Parcel:
    channel_type: str
    connector: Connector
    target: Target
    outgoing: Outgoing


class DeliveryActivities:
    """Activities of ``ChannelDeliveryWorkflow``."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], settings: Settings | None = None
    ) -> None:
        self._sessions = sessions
        self._settings = settings or Settings()  # the environment's, as the worker reads it
        self._http: httpx.AsyncClient | None = None

    @activity.defn
    async def send(self, message_id: int) -> str:
        """Send the message through its chat's channel; the message's status after it
        (``sent`` or ``failed``). Raises, to be retried, while the channel fails for now."""
        parcel_or_status = await self._parcel(message_id)
        if isinstance(parcel_or_status, str):
            return parcel_or_status
        parcel = parcel_or_status
        assert parcel.connector.send is not None
        try:
            sent = await parcel.connector.send(parcel.target, parcel.outgoing, self._client())
        except DeliveryError as error:
            if error.permanent:
                await self._finish(message_id, "failed", error.reason)
                return "failed"
            await self._finish(message_id, "pending", error.reason)
            SENDS.labels(parcel.channel_type, "retry").inc()
            delay = timedelta(seconds=error.retry_after) if error.retry_after else None
            raise ApplicationError(error.reason, next_retry_delay=delay) from None
        await self._finish(message_id, "sent", None, sent)
        return "sent"

    @activity.defn
    async def give_up(self, failure: DeliveryFailure) -> None:
        """Temporal will not try again: the message is ``failed`` with the last reason."""
        await self._finish(failure.message_id, "failed", failure.reason)

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:  # one pool for the worker's deliveries
            self._http = httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, follow_redirects=False)
        return self._http

    async def _parcel(self, message_id: int) -> _Parcel | str:
        """What to send and where; or the message's status when there is nothing to send
        (sent before, or its channel is gone: then it is failed here)."""
        async with self._sessions() as session, session.begin():
            message = await session.get(Message, message_id)
            if message is None:
                raise ApplicationError(f"message {message_id} does not exist", non_retryable=True)
            if message.delivery_status in SENT or message.delivery_status == "failed":
                return message.delivery_status
            dialog = await session.get(Dialog, message.dialog_id)
            chat = await session.get(Chat, message.chat_id)
            assert dialog is not None and chat is not None
            channel = await session.get(Channel, chat.channel_id)
            line = await session.get(Line, dialog.line_id)
            assert channel is not None and line is not None
            settings = LineSettings.model_validate(line.settings)
            sender = await sender_of(session, message, dialog, settings)
        if channel.deleted_at is not None or not registry.delivers(channel.type):
            reason = f"channel {channel.id} is deleted" if channel.deleted_at else "no delivery"
            await self._finish(message_id, "failed", reason)
            return "failed"
        outgoing = Outgoing(
            message_id=message.id,
            dialog_id=dialog.id,
            chat_external_id=chat.external_id,
            text=message.text,
            sender=sender,
            created_at=message.created_at,
            rating_request=bool(
                message.outbound_key and ":rating_request:" in message.outbound_key
            ),
        )
        connector = registry.connector(channel.type)
        config = dict(channel.config)
        if connector.send_config is not None:  # the server's settings send needs (a base URL)
            config = connector.send_config(config, self._settings)
        target = Target(
            channel_id=channel.id,
            config=config,
            secrets=tuple(
                live_secrets(
                    channel.secret,
                    channel.previous_secret,
                    channel.previous_secret_until,
                    datetime.now(UTC),
                )
            ),
            allow_private=self._settings.webhook_allow_private,
        )
        return _Parcel(channel.type, connector, target, outgoing)

    async def _finish(
        self, message_id: int, status: str, error: str | None, sent: Sent | None = None
    ) -> None:
        """Write an attempt's outcome, unless the message is final already; a final outcome
        is told as ``message.delivered`` or ``message.failed``, and counted (once committed)
        in ``openlines_outbound_sends_total``."""
        async with self._sessions() as session, session.begin():
            message = await session.get(Message, message_id, with_for_update=True)
            assert message is not None
            if message.delivery_status != "pending":
                return
            message.delivery_status, message.delivery_error = status, error
            if sent is not None:
                message.delivered_at, message.external_id = datetime.now(UTC), sent.external_id
            if status == "pending":
                return
            dialog = await session.get(Dialog, message.dialog_id)
            assert dialog is not None
            channel_type = dialog.channel_type
            operator_ids = [dialog.operator_id] if dialog.operator_id else []
            record(
                session,
                "message.delivered" if status == "sent" else "message.failed",
                dialog_id=dialog.id,
                operator_ids=operator_ids,
                message_id=message_id,
                error=error,
            )
            if status == "failed":
                await _note_failure(session, message, error or "unknown error", operator_ids)
        SENDS.labels(channel_type, status).inc()


async def _note_failure(
    session: AsyncSession, message: Message, error: str, operator_ids: list[int]
) -> None:
    """Tell whoever reads the dialog that a message did not reach the client: a note (a
    message the client never sees), e.g. when the client has blocked the Telegram bot."""
    note = Message(
        chat_id=message.chat_id,
        dialog_id=message.dialog_id,
        author=NOTE,
        text=f"Message {message.id} did not reach the client: {error}",
    )
    session.add(note)
    await session.flush()
    record(
        session,
        "message.created",
        dialog_id=message.dialog_id,
        operator_ids=operator_ids,
        message_id=note.id,
        author=NOTE,
    )
