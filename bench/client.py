"""The benchmark's HTTP client: the admin's calls and a channel's inbound calls, through the
real API exactly as a deployment would receive them."""

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from channels.webhook.signing import signed_headers


class ApiCallError(RuntimeError):
    """The API answered something the benchmark cannot go on from."""


@dataclass(frozen=True)
class Line:
    """A line made for one measurement, with its `api` channel (or, ``signed``, a `webhook`
    channel: inbound calls are signed with the secret instead of bearing it)."""

    id: int
    channel_id: int
    secret: str
    signed: bool = False


@dataclass(frozen=True)
class Filed:
    """One inbound message the API took (202), and when its answer arrived."""

    dialog_id: int
    chat_id: int
    sent_at: float
    answered_at: float


class Api:
    """Admin-key calls plus channel inbound, on one pooled ``httpx.AsyncClient``."""

    def __init__(self, base_url: str, admin_key: str) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {admin_key}"},
            timeout=httpx.Timeout(60.0),
            # Idle connections are dropped before uvicorn's 5 s keep-alive closes them: with
            # both at 5 s, a request can go out on a connection the server is closing.
            limits=httpx.Limits(
                max_connections=256, max_keepalive_connections=64, keepalive_expiry=2.0
            ),
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, json: Any = None, **params: Any) -> Any:
        """An admin call that must succeed; its JSON answer (None for 204)."""
        response = await self.http.request(method, path, json=json, params=params or None)
        if response.status_code >= 300:
            raise ApiCallError(f"{method} {path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    async def operators(self, count: int) -> list[int]:
        """``count`` operators, online with their workday started."""
        ids = []
        for number in range(1, count + 1):
            operator = await self.call("POST", "/v1/operators", {"name": f"Bench {number}"})
            await self.call("PUT", f"/v1/operators/{operator['id']}/presence", {"status": "online"})
            await self.call("PUT", f"/v1/operators/{operator['id']}/workday", {"state": "started"})
            ids.append(int(operator["id"]))
        return ids

    async def line(self, name: str, operator_ids: list[int], **settings: Any) -> Line:
        """A line whose queue lists the operators in order, with an `api` channel."""
        queue = {
            "members": [{"type": "operator", "id": i} for i in operator_ids],
            "max_dialogs_per_operator": 0,
            **settings.pop("queue", {}),
        }
        line = await self.call("POST", "/v1/lines", {"name": name, "queue": queue, **settings})
        channel = await self.call("POST", f"/v1/lines/{line['id']}/channels", {"type": "api"})
        return Line(id=int(line["id"]), channel_id=int(channel["id"]), secret=channel["secret"])

    async def webhook_line(
        self, name: str, operator_ids: list[int], url: str, **settings: Any
    ) -> Line:
        """As ``line``, with a `webhook` channel delivering to ``url`` instead."""
        queue = {
            "members": [{"type": "operator", "id": i} for i in operator_ids],
            "max_dialogs_per_operator": 0,
            **settings.pop("queue", {}),
        }
        line = await self.call("POST", "/v1/lines", {"name": name, "queue": queue, **settings})
        channel = await self.call(
            "POST", f"/v1/lines/{line['id']}/channels", {"type": "webhook", "config": {"url": url}}
        )
        return Line(
            id=int(line["id"]), channel_id=int(channel["id"]), secret=channel["secret"], signed=True
        )

    async def inbound_response(
        self,
        line: Line,
        chat: str,
        message: str,
        text: str,
        time_limit: float | httpx.Timeout | None = None,
    ) -> httpx.Response:
        """A client message through the line's channel, whatever the answer (``time_limit``:
        this request's own timeout instead of the client's). A ``signed`` line's request is
        signed now, as a webhook channel's sender signs it."""
        payload = {"chat": {"external_id": chat}, "message": {"external_id": message, "text": text}}
        timeout = httpx.USE_CLIENT_DEFAULT if time_limit is None else time_limit
        url = f"/v1/channels/{line.channel_id}/messages"
        if line.signed:
            body = json.dumps(payload).encode()
            headers = {"Content-Type": "application/json"}
            headers |= signed_headers(line.secret, body, datetime.now(UTC))
            return await self.http.post(url, headers=headers, content=body, timeout=timeout)
        return await self.http.post(
            url,
            headers={"Authorization": f"Bearer {line.secret}"},
            json=payload,
            timeout=timeout,
        )

    async def inbound(self, line: Line, chat: str, message: str, text: str) -> Filed:
        """A client message through the line's channel; raises unless it is taken (202)."""
        sent_at = time.time()
        response = await self.inbound_response(line, chat, message, text)
        answered_at = time.time()
        if response.status_code != 202:
            raise ApiCallError(f"inbound: {response.status_code} {response.text}")
        body = response.json()
        return Filed(int(body["dialog_id"]), int(body["chat_id"]), sent_at, answered_at)

    async def dialogs_page(self, line_id: int, before: int, limit: int) -> list[dict[str, Any]]:
        """Dialogs of a line with ids below ``before``, newest first (the list endpoint)."""
        page = await self.call(
            "GET", "/v1/dialogs", line_id=line_id, cursor=str(before), limit=limit
        )
        items: list[dict[str, Any]] = page["items"]
        return items

    async def dialog(self, dialog_id: int) -> dict[str, Any]:
        """One dialog with its deadlines and workflow (asks the workflow)."""
        detail: dict[str, Any] = await self.call("GET", f"/v1/dialogs/{dialog_id}")
        return detail

    async def act(self, dialog_id: int, action: str, body: dict[str, Any]) -> float:
        """An operator action (``accept``, ``messages``, ``close``, ...); its round trip in s."""
        started = time.perf_counter()
        await self.call("POST", f"/v1/dialogs/{dialog_id}/{action}", body)
        return time.perf_counter() - started
