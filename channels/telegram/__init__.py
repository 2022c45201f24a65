"""The ``telegram`` channel: clients write to a Telegram bot, operators answer through it.

An admin connects a line with the bot's token (from @BotFather). ``connect`` checks the
token with ``getMe`` (``InvalidBotToken``, naming ``config.bot_token``, when Telegram does
not know it) and points the bot's webhook at ``<public_url>/v1/channels/{id}/telegram``
with a new random secret, which Telegram sends back in ``X-Telegram-Bot-Api-Secret-Token``
on every update; ``disconnect`` removes the webhook. The stored config holds the token and
that secret (both hidden from reads) and the bot's username. ``api_url`` points the calls
at another Bot API server (a local one, a test fake); it is the server's setting, not stored:
``send`` reads it from the ``Target``'s config, where the server puts it.

The token is a password to the bot: it is in every Bot API URL, and is kept out of every
URL of ours, every log line and every error message (see ``bot_api``).
"""

import secrets
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from channels.contract import ConnectFailed, Connector, Fetched, Server
from channels.telegram.bot_api import (
    PUBLIC_API_URL,
    TOKEN_SHAPE,
    BotApi,
    BotApiError,
    InvalidBotToken,
    WebhookInfo,
    scrub,
)

# Not imported as ``send``: that name would hide the ``channels.telegram.send`` module.
from channels.telegram.send import send as send_message
from core.config import Settings

ALLOWED_UPDATES = ("message", "edited_message", "callback_query")

__all__ = [
    "ALLOWED_UPDATES",
    "CONNECTOR",
    "InvalidBotToken",
    "TelegramConfig",
    "bot_id",
    "connect",
    "disconnect",
    "health",
    "webhook_url",
]


class TelegramConfig(BaseModel):
    """What an admin gives when connecting a telegram channel: the bot's token."""

    # The token never goes into a validation error's text, even a malformed one.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    bot_token: str = Field(  # nor into a repr
        repr=False, json_schema_extra={"pattern": f"^{TOKEN_SHAPE.pattern}$"}
    )

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: str) -> str:
        if not TOKEN_SHAPE.fullmatch(value):
            raise PydanticCustomError(
                "bot_token",
                "not a Telegram bot token: digits, a colon, then 20 or more letters, digits,"
                " '_' or '-', as @BotFather gives it",
            )
        return value


def webhook_url(public_url: str, channel_id: int) -> str:
    """Where Telegram POSTs the channel's updates: no token in it, only the channel id."""
    return f"{public_url.rstrip('/')}/v1/channels/{channel_id}/telegram"


async def connect(
    config: TelegramConfig,
    channel_id: int,
    public_url: str,
    http: httpx.AsyncClient,
    api_url: str | None = None,
) -> dict[str, Any]:
    """Check the token and set the webhook; the config to store.

    Raises ``InvalidBotToken`` for a token Telegram refuses (a 422 on ``config.bot_token``)
    and ``BotApiError`` when Telegram cannot be reached or refuses the webhook.
    """
    api = BotApi(config.bot_token, http, api_url or PUBLIC_API_URL)
    bot = await api.get_me()
    secret = secrets.token_urlsafe(32)  # Telegram allows A-Z, a-z, 0-9, _ and -
    await api.set_webhook(webhook_url(public_url, channel_id), secret, ALLOWED_UPDATES)
    stored: dict[str, Any] = {
        "bot_token": config.bot_token,
        "webhook_secret": secret,
        "bot_username": bot.username,
    }
    return stored


async def disconnect(
    config: dict[str, Any], http: httpx.AsyncClient, api_url: str | None = None
) -> None:
    """Remove the webhook: Telegram stops POSTing the channel's updates."""
    await BotApi(config["bot_token"], http, api_url or PUBLIC_API_URL).delete_webhook()


async def health(
    config: dict[str, Any], http: httpx.AsyncClient, api_url: str | None = None
) -> WebhookInfo:
    """The webhook's state: ``pending_update_count`` and ``last_error_message``."""
    return await BotApi(config["bot_token"], http, api_url or PUBLIC_API_URL).get_webhook_info()


def bot_id(token: str) -> str:
    """The bot's id: the part of its token before the colon (no secret in it)."""
    return token.split(":", 1)[0]


def connect_failed(error: BotApiError) -> ConnectFailed:
    """The contract's error for a failed Bot API call at connection or in a health check."""
    if isinstance(error, InvalidBotToken):
        return ConnectFailed(error.description, field=InvalidBotToken.field)
    down = error.status is None or error.status >= 500 or error.status == 429
    return ConnectFailed(str(error), unavailable=down, retry_after=error.retry_after)


async def _connect(config: BaseModel, server: Server) -> dict[str, Any]:
    assert isinstance(config, TelegramConfig)
    settings = server.settings
    try:
        return await connect(
            config, server.channel_id, settings.public_url, server.http, settings.telegram_api_url
        )
    except BotApiError as error:
        failure = connect_failed(error)
    raise failure  # outside the except block: no httpx error chained


async def _disconnect(config: dict[str, Any], server: Server) -> None:
    try:
        await disconnect(config, server.http, server.settings.telegram_api_url)
    except BotApiError as error:
        failure = connect_failed(error)
    else:
        return
    raise failure


async def _health(config: dict[str, Any], server: Server) -> dict[str, Any]:
    """``getWebhookInfo``, without anything secret: the URL has no token nor query."""
    try:
        info = await health(config, server.http, server.settings.telegram_api_url)
    except BotApiError as error:
        failure = connect_failed(error)
    else:
        url = scrub(info.url.split("?", 1)[0].split("#", 1)[0], str(config.get("bot_token", "")))
        return {
            "url": url,
            "pending_update_count": info.pending_update_count,
            "last_error_date": info.last_error_date,
            "last_error_message": info.last_error_message,
        }
    raise failure


async def _fetch_attachment(config: dict[str, Any], ref: str, server: Server) -> Fetched:
    """A file by its ``file_id``: ``getFile``, then its token URL, never shown."""
    api = BotApi(config["bot_token"], server.http, server.settings.telegram_api_url)
    try:
        content, media_type = await api.download(ref)
    except BotApiError as error:
        failure = connect_failed(error)
    else:
        return Fetched(content=content, media_type=media_type)
    raise failure


def _send_config(config: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The stored config with the server's Bot API base URL, for ``send``."""
    return {**config, "api_url": settings.telegram_api_url}


CONNECTOR = Connector(
    type="telegram",
    config_model=TelegramConfig,
    send=send_message,
    hidden_config=frozenset({"bot_token", "webhook_secret"}),
    connect=_connect,
    disconnect=_disconnect,
    health=_health,
    send_config=_send_config,
    fetch_attachment=_fetch_attachment,
)
