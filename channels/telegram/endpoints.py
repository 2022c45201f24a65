"""The telegram channel's inbound endpoint: Telegram POSTs each update of the bot here.

``POST /v1/channels/{id}/telegram`` is the webhook ``connect`` set. Telegram proves it is
Telegram with the secret it was given (``X-Telegram-Bot-Api-Secret-Token``, compared in
constant time with the stored ``webhook_secret``): wrong or missing is 401 and nothing is
stored. Telegram retries an update for as long as it is not answered 2xx, so everything
well-formed is answered 200, what is filed and what is ignored alike (a malformed body is
422). The answer's body never holds ``method``: Telegram would run it as a Bot API call.

A client message is filed like any channel's (its Telegram message id, per chat, is its
external id, so a re-delivered update is stored once); an edit changes the stored text; a
rating button rates the dialog awaiting it as a ``1`` or ``0`` reply would, and is answered
(``answerCallbackQuery``, best effort) so the client's app stops its spinner.
"""

import logging
from dataclasses import replace
from typing import Literal

import httpx
from fastapi import APIRouter, Request
from pydantic import BaseModel, ValidationError

from api.deps import MAX_ID, Session
from api.errors import ApiError, validation_error
from api.rate_limit import check_client_ip
from channels.telegram.bot_api import BotApi, BotApiError
from channels.telegram.updates import SECRET_HEADER, Incoming, parse_update, secret_matches
from channels.telegram.updates import to_inbound as inbound_of
from core.config import Settings
from core.inbound import (
    InboundChat,
    InboundMessage,
    InboundText,
    edit_client_message,
    file_button_rating,
    file_client_message,
)
from core.models import Channel

router = APIRouter(tags=["inbound"])
log = logging.getLogger("openlines.channels.telegram")
ANSWER_TIMEOUT_S = 5.0
RATING_TEXTS = {"like": "1", "dislike": "0"}


class Handled(BaseModel):
    """What became of the update (Telegram only needs the 200)."""

    update_id: int
    outcome: Literal["filed", "duplicate", "edited", "rated", "ignored"]
    dialog_id: int | None = None
    message_id: int | None = None


@router.post("/v1/channels/{channel_id}/telegram")
async def receive_update(channel_id: int, request: Request, session: Session) -> Handled:
    """One update from Telegram. An unknown, deleted or other-type channel is answered as a
    wrong secret token is, so channel ids cannot be probed."""
    check_client_ip(request)
    channel = await session.get(Channel, channel_id) if 1 <= channel_id <= MAX_ID else None
    live = channel is not None and channel.deleted_at is None and channel.type == "telegram"
    expected = channel.config.get("webhook_secret") if live and channel else None
    if channel is None or not secret_matches(
        str(expected or ""), request.headers.get(SECRET_HEADER)
    ):
        raise ApiError(401, f"wrong or missing {SECRET_HEADER}")
    try:
        incoming = parse_update(await request.body())
    except ValidationError as error:
        raise validation_error(error.errors(), prefix=("body",)) from None
    await session.close()  # filing takes its own transaction
    sessions = request.app.state.sessions
    settings: Settings = request.app.state.settings
    if incoming.kind == "message":
        filed = await file_client_message(sessions, channel, inbound_of(incoming))
        outcome: Literal["filed", "duplicate"] = "duplicate" if filed.duplicate else "filed"
        return Handled(
            update_id=incoming.update_id,
            outcome=outcome,
            dialog_id=filed.dialog_id,
            message_id=filed.message_id,
        )
    if incoming.kind == "edited_message":
        assert incoming.chat_id is not None and incoming.message_id is not None
        edited = await edit_client_message(
            sessions, channel, incoming.chat_id, incoming.message_id, inbound_of_text(incoming)
        )
        if edited is None:
            return _ignored(channel, incoming, "an edit of a message never filed")
        return Handled(update_id=incoming.update_id, outcome="edited", message_id=edited)
    if incoming.kind == "rating":
        return await _rate(channel, incoming, request, settings)
    await _answer_callback(channel, incoming, settings)
    return _ignored(channel, incoming, incoming.ignored_reason or "not handled")


def inbound_of_text(incoming: Incoming) -> str:
    """An edited message's new text, cut as a filed one's would be."""
    return inbound_of(replace(incoming, kind="message")).message.text


async def _rate(
    channel: Channel, incoming: Incoming, request: Request, settings: Settings
) -> Handled:
    """A rating button: the dialog awaiting a rating gets it; otherwise nothing is stored."""
    assert incoming.rating is not None and incoming.chat_id is not None
    inbound = InboundMessage(
        chat=InboundChat(external_id=incoming.chat_id),
        message=InboundText(
            external_id=f"cb-{incoming.callback_query_id}", text=RATING_TEXTS[incoming.rating]
        ),
    )
    rated = int(incoming.rated_message_id or 0)
    filed = None
    if rated <= MAX_ID:  # a larger id is none of ours (nor fits the column)
        filed = await file_button_rating(request.app.state.sessions, channel, inbound, rated)
    await _answer_callback(channel, incoming, settings)
    if filed is None:
        return _ignored(channel, incoming, "no rating awaited for that message")
    return Handled(
        update_id=incoming.update_id,
        outcome="duplicate" if filed.duplicate else "rated",
        dialog_id=filed.dialog_id,
        message_id=filed.message_id,
    )


async def _answer_callback(channel: Channel, incoming: Incoming, settings: Settings) -> None:
    """Stop the button's spinner in the client's app; best effort (a failure is logged)."""
    token = channel.config.get("bot_token")
    if incoming.callback_query_id is None or not token:
        return
    async with httpx.AsyncClient(timeout=ANSWER_TIMEOUT_S, follow_redirects=False) as http:
        try:
            await BotApi(str(token), http, settings.telegram_api_url).answer_callback_query(
                incoming.callback_query_id
            )
        except BotApiError as error:  # holds no token
            log.warning("telegram channel %s: answerCallbackQuery failed: %s", channel.id, error)


def _ignored(channel: Channel, incoming: Incoming, reason: str) -> Handled:
    log.info("telegram channel %s: update %s ignored: %s", channel.id, incoming.update_id, reason)
    return Handled(update_id=incoming.update_id, outcome="ignored")
