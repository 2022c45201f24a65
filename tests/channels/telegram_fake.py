"""A fake Telegram Bot API: the methods the telegram channel calls, at ``<url>/bot<token>/``.

Served by uvicorn in the test's event loop on 127.0.0.1 and a free port. It answers as
Telegram does (``{"ok": true, "result": ...}``, or ``{"ok": false, "error_code",
"description", "parameters"}`` with the same HTTP status), knows one bot (``TOKEN``: any
other well-shaped token gets 401 ``Unauthorized``, a malformed one 404 ``Not Found``), and
records every call with its parameters and token. ``sendMessage`` checks its HTML as
Telegram does (unknown tags, bare ``<`` and ``&``: 400 ``can't parse entities``), the text
length and the buttons' ``callback_data``. ``setWebhook`` stores the webhook, which
``deliver`` then POSTs recorded updates to, secret header included.

Scripting: ``fail_next`` makes a method's next calls answer an error (429 with
``retry_after``, 500, 403 "Forbidden: bot was blocked by the user", or a plain-text page),
and ``stall`` delays a method's answers.
"""

import asyncio
import html
import json
import re
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.local_server import serving

BOT_ID = 7012345678
TOKEN = f"{BOT_ID}:AAH3fakeTokenForOpenlinesTests-x_9Qz"
BOT_USERNAME = "openlines_test_bot"
UPDATES_DIR = Path(__file__).parent / "telegram_updates"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
TEXT_MAX = 4096
DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    500: "Internal Server Error",
    502: "Bad Gateway",
}
_TOKEN_SHAPE = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{20,}")
_SECRET_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,256}")
_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre"}
_TAGS |= {"span", "tg-spoiler", "tg-emoji", "blockquote"}
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)(\s[^<>]*)?>")
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});")


def recorded_update(name: str) -> dict[str, Any]:
    """A recorded Update payload from ``telegram_updates/<name>.json``."""
    data: dict[str, Any] = json.loads((UPDATES_DIR / f"{name}.json").read_text("utf-8"))
    return data


@dataclass(frozen=True)
class Call:
    method: str
    params: dict[str, Any]
    token: str


@dataclass(frozen=True)
class Scripted:
    status: int
    description: str
    retry_after: int | None = None
    plain: bool = False  # a non-JSON page, as a proxy in front of the Bot API answers


@dataclass
class Webhook:
    url: str
    secret_token: str | None
    allowed_updates: list[str] | None


@dataclass
class FakeTelegram:
    url: str = ""  # the API's base URL, as ``https://api.telegram.org``
    require_https: bool = False  # Telegram's rule for webhook URLs; off for local receivers
    any_token: bool = (
        False  # take every well-shaped token as the bot's (schemathesis makes them up)
    )
    calls: list[Call] = field(default_factory=list)
    webhook: Webhook | None = None
    pending_update_count: int = 0
    last_error_message: str | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)  # sendMessage results
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # id: (path, content)
    stall: dict[str, float] = field(default_factory=dict)  # method: seconds before answering
    _script: defaultdict[str, deque[Scripted]] = field(default_factory=lambda: defaultdict(deque))
    _message_ids: Iterator[int] = field(default_factory=lambda: count(101))

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/bot{token}/{method}", self._handle, methods=["GET", "POST"]),
                Route("/file/bot{token}/{path:path}", self._file, methods=["GET"]),
            ]
        )

    def fail_next(
        self,
        method: str,
        status: int,
        description: str | None = None,
        *,
        retry_after: int | None = None,
        times: int = 1,
        plain: bool = False,
    ) -> None:
        """Answer ``method``'s next ``times`` calls with this error instead."""
        if description is None:
            description = (
                f"Too Many Requests: retry after {retry_after}"
                if status == 429
                else DESCRIPTIONS.get(status, "Error")
            )
        for _ in range(times):
            self._script[method].append(Scripted(status, description, retry_after, plain))

    def calls_of(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def add_file(self, file_id: str, content: bytes, file_path: str | None = None) -> str:
        """A file a client sent, as ``getFile`` will describe it."""
        path = file_path or f"documents/file_{len(self.files)}.bin"
        self.files[file_id] = (path, content)
        return path

    async def deliver(
        self,
        update: dict[str, Any],
        *,
        http: httpx.AsyncClient | None = None,
        secret: str | None = None,
    ) -> httpx.Response:
        """POST ``update`` to the webhook as Telegram does; ``secret`` overrides the header
        (a forger's guess). ``http`` may route to an ASGI app instead of a server."""
        if self.webhook is None or not self.webhook.url:
            raise AssertionError("no webhook set: call setWebhook first")
        headers = {"Content-Type": "application/json"}
        token = secret if secret is not None else self.webhook.secret_token
        if token is not None:
            headers[SECRET_HEADER] = token
        body = json.dumps(update).encode()
        if http is not None:
            return await http.post(self.webhook.url, content=body, headers=headers)
        async with httpx.AsyncClient(timeout=5.0) as client:
            return await client.post(self.webhook.url, content=body, headers=headers)

    async def _params(self, request: Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query_params)
        if request.headers.get("content-type", "").startswith("application/json"):
            body = await request.json()
            if isinstance(body, dict):
                params.update(body)
        elif request.method == "POST":
            params.update((await request.form()).items())
        return params

    async def _handle(self, request: Request) -> Response:
        token, method = request.path_params["token"], request.path_params["method"]
        params = await self._params(request)
        self.calls.append(Call(method, params, token))
        if delay := self.stall.get(method):
            await asyncio.sleep(delay)
        if not _TOKEN_SHAPE.fullmatch(token):
            return _error(404, "Not Found")
        if token != TOKEN and not self.any_token:
            return _error(401, "Unauthorized")
        if self._script[method]:
            scripted = self._script[method].popleft()
            if scripted.plain:
                return PlainTextResponse(scripted.description, status_code=scripted.status)
            return _error(scripted.status, scripted.description, scripted.retry_after)
        handler = {
            "getMe": self._get_me,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message,
            "answerCallbackQuery": self._answer_callback_query,
            "getFile": self._get_file,
        }.get(method)
        if handler is None:
            return _error(404, "Not Found")
        return handler(params)

    def _get_me(self, params: dict[str, Any]) -> Response:
        return _ok(
            {
                "id": BOT_ID,
                "is_bot": True,
                "first_name": "Openlines Test",
                "username": BOT_USERNAME,
                "can_join_groups": True,
                "can_read_all_group_messages": False,
                "supports_inline_queries": False,
            }
        )

    def _set_webhook(self, params: dict[str, Any]) -> Response:
        url = params.get("url")
        if not isinstance(url, str):
            return _error(400, "Bad Request: bad webhook: URL must be provided")
        if not url:
            self.webhook = None
            return _ok(True, "Webhook was deleted")
        if self.require_https and not url.startswith("https://"):
            return _error(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_SHAPE.fullmatch(str(secret)):
            return _error(400, "Bad Request: secret token contains unallowed characters")
        allowed = _json_param(params.get("allowed_updates"))
        if allowed is not None and (
            not isinstance(allowed, list) or not all(isinstance(a, str) for a in allowed)
        ):
            return _error(400, "Bad Request: can't parse allowed updates")
        self.webhook = Webhook(url, secret, allowed)
        return _ok(True, "Webhook was set")

    def _delete_webhook(self, params: dict[str, Any]) -> Response:
        existed = self.webhook is not None
        self.webhook = None
        return _ok(True, "Webhook was deleted" if existed else "Webhook is already deleted")

    def _get_webhook_info(self, params: dict[str, Any]) -> Response:
        info: dict[str, Any] = {
            "url": self.webhook.url if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": self.pending_update_count,
        }
        if self.webhook is not None:
            info["max_connections"] = 40
            info["ip_address"] = "127.0.0.1"
            if self.webhook.allowed_updates is not None:
                info["allowed_updates"] = self.webhook.allowed_updates
        if self.last_error_message:
            info["last_error_date"] = int(time.time())
            info["last_error_message"] = self.last_error_message
        return _ok(info)

    def _send_message(self, params: dict[str, Any]) -> Response:
        chat_id = params.get("chat_id")
        if isinstance(chat_id, str) and re.fullmatch(r"-?[0-9]+", chat_id):
            chat_id = int(chat_id)
        if not isinstance(chat_id, int) or isinstance(chat_id, bool):
            return _error(400, "Bad Request: chat not found")
        text = params.get("text")
        if not isinstance(text, str):
            return _error(400, "Bad Request: message text is empty")
        if params.get("parse_mode") == "HTML":
            problem = html_problem(text)
            if problem:
                return _error(400, f"Bad Request: can't parse entities: {problem}")
            text = plain_text(text)
        if not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(text.encode("utf-16-le")) // 2 > TEXT_MAX:
            return _error(400, "Bad Request: message is too long")
        markup = _json_param(params.get("reply_markup"))
        if markup is not None and not _buttons_valid(markup):
            return _error(400, "Bad Request: BUTTON_DATA_INVALID")
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "from": {
                "id": BOT_ID,
                "is_bot": True,
                "first_name": "Openlines Test",
                "username": BOT_USERNAME,
            },
            "chat": {"id": chat_id, "type": "private"},
            "date": int(time.time()),
            "text": text,
        }
        if markup is not None:
            message["reply_markup"] = markup
        self.sent.append({**message, "html": params.get("text")})
        return _ok(message)

    def _answer_callback_query(self, params: dict[str, Any]) -> Response:
        if not params.get("callback_query_id"):
            return _error(400, "Bad Request: query is too old and response timeout expired")
        return _ok(True)

    async def _file(self, request: Request) -> Response:
        """A file's bytes at the token URL ``getFile``'s ``file_path`` names."""
        token, path = request.path_params["token"], request.path_params["path"]
        self.calls.append(Call("file", {"path": path}, token))
        if token != TOKEN:
            return Response(status_code=401)
        for file_path, content in self.files.values():
            if file_path == path:
                return Response(content, media_type="application/octet-stream")
        return Response(status_code=404)

    def _get_file(self, params: dict[str, Any]) -> Response:
        file_id = params.get("file_id")
        if file_id not in self.files:
            return _error(400, "Bad Request: invalid file_id")
        path, content = self.files[file_id]
        return _ok(
            {
                "file_id": file_id,
                "file_unique_id": f"u{abs(hash(file_id)) % 10**8}",
                "file_size": len(content),
                "file_path": path,
            }
        )


def html_problem(text: str) -> str | None:
    """Why Telegram would refuse ``text`` in HTML parse mode, or None."""
    open_tags: list[str] = []
    position = 0
    while position < len(text):
        char = text[position]
        offset = len(text[:position].encode())
        if char == "<":
            tag = _TAG.match(text, position)
            if tag is None:
                return f"Unsupported start tag at byte offset {offset}"
            closing, name = tag.group(1) == "/", tag.group(2).lower()
            if name not in _TAGS:
                return f'Unsupported start tag "{name}" at byte offset {offset}'
            if closing:
                if not open_tags or open_tags.pop() != name:
                    return f'Unexpected end tag "{name}" at byte offset {offset}'
            else:
                open_tags.append(name)
            position = tag.end()
        elif char == "&":
            entity = _ENTITY.match(text, position)
            if entity is None:
                return f"Unsupported HTML entity at byte offset {offset}"
            position = entity.end()
        else:
            position += 1
    if open_tags:
        return f'Can\'t find end tag corresponding to start tag "{open_tags[-1]}"'
    return None


def plain_text(text: str) -> str:
    """The text as the client sees it: tags dropped, entities read."""
    return html.unescape(_TAG.sub("", text))


def _buttons_valid(markup: Any) -> bool:
    if not isinstance(markup, dict) or "inline_keyboard" not in markup:
        return isinstance(markup, dict)
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        return False
    for button in (button for row in rows for button in row):
        if not isinstance(button, dict) or not button.get("text"):
            return False
        data = button.get("callback_data")
        if data is not None and not 1 <= len(str(data).encode()) <= 64:
            return False
    return True


def _json_param(value: Any) -> Any:
    """A JSON-typed parameter: as is from a JSON body, decoded from a form or query."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _ok(result: Any, description: str | None = None) -> Response:
    body: dict[str, Any] = {"ok": True, "result": result}
    if description:
        body["description"] = description
    return JSONResponse(body)


def _error(status: int, description: str, retry_after: int | None = None) -> Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    headers = {}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(body, status_code=status, headers=headers)


@asynccontextmanager
async def serve_telegram() -> AsyncIterator[FakeTelegram]:
    """A running fake Bot API; ``url`` is its base URL (where ``api.telegram.org`` is)."""
    fake = FakeTelegram()
    async with serving(fake.app()) as url:
        fake.url = url
        yield fake
