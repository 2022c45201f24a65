"""Sending a message on a telegram channel: one ``sendMessage`` to the client's chat.

The text goes in HTML parse mode: the sender's name in bold on the first line, then the
text, both escaped, so nothing an operator types is read as markup. A rating request
carries like / dislike buttons whose ``callback_data`` names our message.

Telegram's answer decides what happens next: a 429 is retried after its ``retry_after``;
5xx, a network error and a timeout are retried with backoff; any other 4xx (403: the client
blocked the bot; 400: a chat that is gone; 401: a revoked token) is permanent. A timeout
may come after Telegram sent the message, and the Bot API has no idempotency key, so a
retried timeout can show the client the message twice.
"""

import html
import re
from typing import Any

import httpx

from channels.contract import DeliveryError, Outgoing, Sent, Target
from channels.telegram.bot_api import BotApi, BotApiError

TEXT_MAX = 4096
"""Telegram's limit on a message's text, in UTF-16 code units after entity parsing."""
RATING_BUTTONS = (("👍", "like"), ("👎", "dislike"))
_NUMERIC_CHAT_ID = re.compile(r"-?[0-9]{1,20}")


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` UTF-16 code units, ending with an ellipsis if it was cut."""
    if _utf16_len(text) <= limit:
        return text
    kept, used = [], 1  # the ellipsis
    for char in text:
        used += _utf16_len(char)
        if used > limit:
            break
        kept.append(char)
    return "".join(kept) + "…"


def render(outgoing: Outgoing) -> str:
    """The HTML text: the sender's name in bold, a line break, the text; all escaped, and
    the text cut so the whole stays within Telegram's limit."""
    name = " ".join(outgoing.sender.name.split())
    if not name:
        return html.escape(_cut(outgoing.text, TEXT_MAX))
    name = _cut(name, 256)
    room = TEXT_MAX - _utf16_len(name) - 1  # the line break
    return f"<b>{html.escape(name)}</b>\n{html.escape(_cut(outgoing.text, room))}"


def rating_keyboard(message_id: int) -> dict[str, Any]:
    """Like / dislike buttons; a press comes back as ``rating:<value>:<message_id>``."""
    buttons = [
        {"text": label, "callback_data": f"rating:{value}:{message_id}"}
        for label, value in RATING_BUTTONS
    ]
    return {"inline_keyboard": [buttons]}


def delivery_error(error: BotApiError) -> DeliveryError:
    """The contract's error for a failed ``sendMessage``: what to retry, when."""
    reason = str(error)  # scrubbed by BotApi: no token in it
    if error.status == 429:
        return DeliveryError(reason, retry_after=error.retry_after)
    # 403 included: the client blocked the bot (or deleted their account) for good.
    permanent = error.status is not None and 400 <= error.status < 500
    return DeliveryError(reason, permanent=permanent)


async def send(target: Target, outgoing: Outgoing, http: httpx.AsyncClient) -> Sent:
    """Send ``outgoing`` to the Telegram chat ``outgoing.chat_external_id``; ``Sent`` with
    Telegram's message id, or ``DeliveryError``."""
    if not target.config.get("bot_token"):
        raise DeliveryError("the channel's config has no bot_token", permanent=True)
    api = BotApi.for_config(target.config, http)
    chat = outgoing.chat_external_id
    chat_id: int | str = int(chat) if _NUMERIC_CHAT_ID.fullmatch(chat) else chat
    markup = rating_keyboard(outgoing.message_id) if outgoing.rating_request else None
    try:
        message_id = await api.send_message(chat_id, render(outgoing), reply_markup=markup)
    except BotApiError as error:
        failure = delivery_error(error)
    else:
        return Sent(external_id=str(message_id))
    raise failure  # outside the except block: nothing chained to it
