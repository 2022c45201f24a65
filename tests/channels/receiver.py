"""A fake webhook receiver: records every POST and answers as the test scripts it.

Served by uvicorn in the test's event loop on 127.0.0.1 and a free port; any path under
``url`` is accepted. Use it as::

    async with serve_receiver() as receiver:
        receiver.answer(500, Reply(429, {"Retry-After": "3"}))  # then 200 again
        ...POST to receiver.url...
        receiver.requests[0].json  # what came, in order

Each request takes the next scripted answer; once the script is used up it answers 200.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.local_server import serving


@dataclass(frozen=True)
class Received:
    """One request as it came: headers (case-insensitive), the raw body, the parsed JSON
    (None when the body is not JSON)."""

    path: str
    headers: Headers
    body: bytes
    json: Any


@dataclass(frozen=True)
class Reply:
    """One scripted answer; ``delay`` seconds pass before it is sent."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    text: str = ""
    delay: float = 0.0


class Receiver:
    """The receiver a test talks to: its ``url``, the ``requests`` so far, its script."""

    def __init__(self) -> None:
        self.url = ""  # set once serving; POST here (or below)
        self.requests: list[Received] = []
        self._script: list[Reply] = []
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])

    def answer(self, *replies: int | Reply) -> None:
        """Queue answers for the next requests, in order: a status, or a full ``Reply``."""
        self._script.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        self.requests.append(Received(request.url.path, request.headers, body, parsed))
        reply = self._script.pop(0) if self._script else Reply()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return Response(reply.text, status_code=reply.status, headers=reply.headers)


@asynccontextmanager
async def serve_receiver() -> AsyncIterator[Receiver]:
    """A running receiver; ``url`` is where to POST."""
    receiver = Receiver()
    async with serving(receiver.app) as base_url:
        receiver.url = f"{base_url}/hook"
        yield receiver
