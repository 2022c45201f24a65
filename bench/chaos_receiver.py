"""The chaos run's webhook receiver: where openlines delivers the webhook channel's messages.

A Starlette app served by uvicorn in the run's own event loop on 127.0.0.1 and a free port.
Each POST is checked as a real receiver must (``channels.webhook.signing.verify`` with the
channel's secret; ``X-Openlines-Delivery`` names the message the body holds) and recorded by
its delivery id. A request that does not verify is answered 401; every ``refuse_every``-th
request is answered 503 (no ``Retry-After``), so deliveries are retried under the faults too;
any other is taken (200). Deliveries are at least once: a message may come again (a worker
killed after the POST, before it wrote ``sent``), and is counted, not refused.
"""

import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from channels.webhook.signing import BadSignature, verify
from core import local_http

DELIVERY_HEADER = "X-Openlines-Delivery"
REFUSE_EVERY = 7  # every 7th request gets a 503: the sender must try again


@dataclass
class ChaosReceiver:
    """What came: the delivery ids taken (200) and how often, the requests refused, and each
    request that did not verify (why). ``secret`` is the channel's, set once it exists."""

    refuse_every: int = REFUSE_EVERY
    url: str = ""  # set once serving
    secret: str = ""
    requests: int = 0
    refused: int = 0  # answered 503 on purpose
    taken: Counter[int] = field(default_factory=Counter)  # delivery id -> 200s answered
    bad: list[str] = field(default_factory=list)  # requests that did not verify, and why

    @property
    def verified(self) -> int:
        return self.requests - len(self.bad)

    @property
    def duplicates(self) -> int:
        """Deliveries taken again after the first time (at-least-once)."""
        return sum(self.taken.values()) - len(self.taken)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])

    async def _handle(self, request: Request) -> Response:
        self.requests += 1
        number = self.requests
        body = await request.body()
        problem = self._problem(request, body)
        if problem is not None:
            self.bad.append(f"request {number}: {problem}")
            return Response(problem, status_code=401)
        if self.refuse_every and number % self.refuse_every == 0:
            self.refused += 1
            return Response("refused on purpose", status_code=503)
        self.taken[int(request.headers[DELIVERY_HEADER])] += 1
        return Response(status_code=200)

    def _problem(self, request: Request, body: bytes) -> str | None:
        """Why the request is not a well-signed delivery; None when it is."""
        try:
            verify(request.headers, body, [self.secret], datetime.now(UTC))
        except BadSignature as error:
            return f"bad signature: {error.reason}"
        delivery = request.headers.get(DELIVERY_HEADER, "")
        if not delivery.isdigit():
            return f"{DELIVERY_HEADER} is {delivery!r}, not a message id"
        try:
            message_id = json.loads(body).get("message_id")
        except (ValueError, AttributeError):
            return "the body is not a JSON object"
        if message_id != int(delivery):
            return f"{DELIVERY_HEADER} {delivery} but the body's message_id is {message_id}"
        return None


@asynccontextmanager
async def serve_receiver(refuse_every: int = REFUSE_EVERY) -> AsyncIterator[ChaosReceiver]:
    """A running receiver in this event loop; POST to its ``url``."""
    receiver = ChaosReceiver(refuse_every=refuse_every)
    bound = local_http.bound_socket("127.0.0.1", 0)
    receiver.url = f"http://127.0.0.1:{bound.getsockname()[1]}/openlines"
    # A short grace: a worker still holding a keep-alive connection must not stall the end.
    async with local_http.serving(receiver.app(), bound, grace_s=2):
        yield receiver
