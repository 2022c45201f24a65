"""A small Telegram Bot API client: the methods the telegram channel calls, and nothing else.

Every call is ``POST <api>/bot<token>/<method>`` with a JSON body, answered with
``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code", "description",
"parameters": {"retry_after"}}``. The token is part of every URL, and httpx puts URLs in
its exceptions and its request log, so:

* no error raised here carries the token: ``BotApiError`` holds the method, the status and
  Telegram's description (scrubbed), and is raised outside any ``except`` block, so neither
  ``__cause__`` nor ``__context__`` leads back to an httpx exception;
* importing this module installs a filter on the ``httpx`` logger that blanks Bot API tokens
  out of its ``HTTP Request: POST <url>`` lines (the worker logs at INFO).
"""

import asyncio
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from core.log_scrub import scrub_httpx_log

PUBLIC_API_URL = "https://api.telegram.org"
REQUEST_TIMEOUT_S = 10.0
"""One whole call, answer included, must be done within this."""
DOWNLOAD_MAX = 20 * 1024 * 1024
"""Telegram serves files up to 20 MB to bots; a download is held in memory, so no more."""
DESCRIPTION_MAX = 300
"""Characters of Telegram's (or the network's) explanation kept in an error."""
TOKEN_SHAPE = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{20,}")
"""A bot token as @BotFather gives it (the bot's id, a colon, a secret)."""
REDACTED = "<redacted>"
_Model = TypeVar("_Model", bound=BaseModel)
# A bot token as it appears in a Bot API URL path (``/bot<token>/``) or file URL.
_TOKEN_IN_TEXT = re.compile(r"[0-9]{1,20}(?::|%3A)[A-Za-z0-9_-]{20,}", re.IGNORECASE)


def scrub(text: str, token: str = "") -> str:
    """``text`` without ``token`` nor anything shaped like a bot token in it."""
    if token:
        text = text.replace(token, REDACTED).replace(token.replace(":", "%3A"), REDACTED)
    return _TOKEN_IN_TEXT.sub(REDACTED, text)


scrub_httpx_log(scrub)


class BotApiError(Exception):
    """A Bot API call failed. ``status`` is the HTTP status, None when no answer came (a
    network error or a timeout); ``retry_after`` is Telegram's wait in seconds on a 429."""

    def __init__(
        self, method: str, status: int | None, description: str, retry_after: float | None = None
    ) -> None:
        super().__init__(f"Telegram {method}: {status or 'no answer'}: {description}")
        self.method = method
        self.status = status
        self.description = description
        self.retry_after = retry_after


class InvalidBotToken(BotApiError):
    """Telegram refused the token itself (401, or 404 for a token it cannot parse)."""

    field = "config.bot_token"


class BotUser(BaseModel):
    """The bot, as ``getMe`` answers (unknown fields ignored)."""

    id: int
    is_bot: bool = True
    first_name: str = ""
    username: str | None = None


class WebhookInfo(BaseModel):
    """The webhook's state, as ``getWebhookInfo`` answers: the channel's health."""

    url: str = ""
    pending_update_count: int = 0
    last_error_date: int | None = None
    last_error_message: str | None = None
    allowed_updates: list[str] | None = None


class BotApi:
    """One bot's Bot API, over the caller's httpx client."""

    def __init__(self, token: str, http: httpx.AsyncClient, base_url: str = PUBLIC_API_URL) -> None:
        self._token = token
        self._http = http
        self._base = base_url.rstrip("/")

    def __repr__(self) -> str:
        return f"BotApi(base_url={self._base!r})"  # never the token

    @classmethod
    def for_config(cls, config: Mapping[str, Any], http: httpx.AsyncClient) -> "BotApi":
        """The client for a channel's stored config: ``bot_token``, optional ``api_url``."""
        return cls(str(config["bot_token"]), http, str(config.get("api_url") or PUBLIC_API_URL))

    async def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """Call ``method``; its ``result``, or ``BotApiError`` (never holding the token)."""
        outcome = await self._post(method, dict(params or {}))
        if isinstance(outcome, BotApiError):
            raise outcome  # raised here, outside the except blocks: no httpx error chained
        response = outcome
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("ok"), bool):
            detail = f"HTTP {response.status_code} without a Bot API answer"
            raise BotApiError(method, response.status_code, detail)
        if body["ok"]:
            return body.get("result")
        raise self._error(method, response, body)

    async def _post(self, method: str, params: dict[str, Any]) -> httpx.Response | BotApiError:
        """The answer, or the error to raise for a call that got none."""
        url = f"{self._base}/bot{self._token}/{method}"
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                return await self._http.post(url, json=params, timeout=REQUEST_TIMEOUT_S)
        except (TimeoutError, httpx.TimeoutException):
            detail = f"no answer within {REQUEST_TIMEOUT_S:g} s"
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            detail = f"{type(error).__name__}: {error}"
        return BotApiError(method, None, self._clean(detail))

    def _error(self, method: str, response: httpx.Response, body: dict[str, Any]) -> BotApiError:
        code = body.get("error_code")
        status = code if isinstance(code, int) and code >= 400 else response.status_code
        description = self._clean(str(body.get("description") or "no description"))
        parameters = body.get("parameters")
        retry_after = parameters.get("retry_after") if isinstance(parameters, dict) else None
        if not isinstance(retry_after, int | float):
            header = response.headers.get("retry-after", "")
            retry_after = float(header) if header.isdigit() else None
        if status in (401, 404):
            return InvalidBotToken(method, status, f"Telegram refused the bot token: {description}")
        return BotApiError(method, status, description, retry_after)

    def _clean(self, text: str) -> str:
        return " ".join(scrub(text, self._token).split())[:DESCRIPTION_MAX]

    def _parse(self, method: str, model: type[_Model], result: Any) -> _Model:
        try:
            return model.model_validate(result)
        except ValidationError:
            pass  # raised below, so that the validation error (Telegram's data) is not chained
        raise BotApiError(method, 200, f"unexpected result: not a {model.__name__}")

    async def get_me(self) -> BotUser:
        """The bot; ``InvalidBotToken`` when Telegram does not know the token."""
        return self._parse("getMe", BotUser, await self.call("getMe"))

    async def set_webhook(
        self, url: str, secret_token: str, allowed_updates: Sequence[str]
    ) -> None:
        """Have Telegram POST updates of these types to ``url``, with ``secret_token`` in the
        ``X-Telegram-Bot-Api-Secret-Token`` header of each."""
        params = {"url": url, "secret_token": secret_token, "allowed_updates": [*allowed_updates]}
        await self.call("setWebhook", params)

    async def delete_webhook(self) -> None:
        """Stop Telegram's POSTs (updates pending stay with Telegram)."""
        await self.call("deleteWebhook")

    async def get_webhook_info(self) -> WebhookInfo:
        return self._parse("getWebhookInfo", WebhookInfo, await self.call("getWebhookInfo"))

    async def send_message(
        self,
        chat_id: int | str,
        text: str,
        parse_mode: str | None = "HTML",
        reply_markup: Mapping[str, Any] | None = None,
    ) -> int:
        """Send ``text`` to the chat; the new message's id."""
        params: dict[str, Any] = {"chat_id": chat_id, "text": text}
        if parse_mode:
            params["parse_mode"] = parse_mode
        if reply_markup is not None:
            params["reply_markup"] = dict(reply_markup)
        result = await self.call("sendMessage", params)
        message_id = result.get("message_id") if isinstance(result, dict) else None
        if not isinstance(message_id, int):
            raise BotApiError("sendMessage", 200, "unexpected result: no message_id")
        return message_id

    async def answer_callback_query(self, callback_query_id: str, text: str | None = None) -> None:
        """Stop the button's spinner in the client's app, showing ``text`` if given."""
        params: dict[str, Any] = {"callback_query_id": callback_query_id}
        if text is not None:
            params["text"] = text
        await self.call("answerCallbackQuery", params)

    async def get_file(self, file_id: str) -> str:
        """The file's ``file_path``, for ``<api>/file/bot<token>/<file_path>`` (a token URL:
        fetch it, never store or show it)."""
        result = await self.call("getFile", {"file_id": file_id})
        file_path = result.get("file_path") if isinstance(result, dict) else None
        if not isinstance(file_path, str) or not file_path:
            # Telegram leaves it out for files over its 20 MB download limit.
            raise BotApiError("getFile", 200, "no file_path: the file cannot be downloaded")
        return file_path

    async def download(self, file_id: str) -> tuple[bytes, str | None]:
        """A file a client sent: its bytes and the content type Telegram gave, through
        ``getFile`` and the token URL it names (fetched here, never shown)."""
        file_path = await self.get_file(file_id)
        outcome = await self._get_file_content(file_path)
        if isinstance(outcome, BotApiError):
            raise outcome
        return outcome

    async def _get_file_content(self, file_path: str) -> tuple[bytes, str | None] | BotApiError:
        url = f"{self._base}/file/bot{self._token}/{file_path.lstrip('/')}"
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S * 3):
                async with self._http.stream("GET", url, timeout=REQUEST_TIMEOUT_S) as response:
                    if response.status_code != 200:
                        return BotApiError("file", response.status_code, "download refused")
                    content = bytearray()
                    async for chunk in response.aiter_bytes():
                        content += chunk
                        if len(content) > DOWNLOAD_MAX:
                            return BotApiError("file", 200, "over the 20 MB download limit")
                    return bytes(content), response.headers.get("content-type")
        except (TimeoutError, httpx.TimeoutException):
            detail = "no answer in time"
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            detail = f"{type(error).__name__}: {error}"
        return BotApiError("file", None, self._clean(detail))
