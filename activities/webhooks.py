"""The webhook delivery activity: one signed POST of one event to one subscription.

Each attempt reads the delivery in a short transaction, makes the HTTP call with no
transaction open (a slow receiver must not hold a database lock; on SQLite it would stop every
writer), then writes the outcome in a second short transaction. Temporal retries the attempt
(see ``workflows.webhook_delivery``); a crash between the POST and the write sends the event
again, so receivers deduplicate by ``X-Openlines-Delivery`` (or the event ``id``).
"""

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from channels.webhook.signing import live_secrets, signed_headers
from core import egress
from core.events.models import Event, WebhookDelivery, WebhookSubscription

TIMEOUT_S = 10.0
ATTEMPTS = 12
"""Tries per delivery (the workflow's retry policy); the last one marks the row failed."""
# A 4xx says the request itself is wrong and will stay wrong, except these two.
RETRYABLE_4XX = (408, 429)
USER_AGENT = "openlines-webhooks/1"


def event_body(event: Event) -> dict[str, Any]:
    """What an event looks like outside: the webhook POST body and the SSE ``data``."""
    return {
        "id": event.id,
        "type": event.type,
        "created_at": event.created_at.isoformat(),
        "data": event.data,
    }


def _last_attempt() -> bool:
    """Whether Temporal will not try this activity again after a retryable failure: by the
    retry policy the task came with or, when the server sends none (the test server), the
    one the workflow sets."""
    info = activity.info()
    limit = info.retry_policy.maximum_attempts if info.retry_policy else ATTEMPTS
    return 0 < limit <= info.attempt


def _clean(error: str) -> str:
    """Fits the ``last_error`` column (PostgreSQL refuses longer text and NUL)."""
    return error.replace("\x00", "")[:1000]


class WebhookActivities:
    """``allow_private``: subscriber URLs may lead to private addresses (``core.egress``)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        timeout_s: float = TIMEOUT_S,
        allow_private: bool = False,
    ) -> None:
        self._sessions = sessions
        self._timeout_s = timeout_s
        self._allow_private = allow_private

    @activity.defn
    async def deliver(self, delivery_id: int) -> str:
        """POST the delivery's event to its subscription; returns the delivery's status.

        A delivery that is no longer pending (delivered, or given up) is not sent again. A
        non-2xx answer or a network error raises, so Temporal retries; a 4xx other than
        408/429 is final at once. The attempt that Temporal will not retry marks the row
        ``failed``.
        """
        async with self._sessions() as session, session.begin():
            found = (
                await session.execute(
                    select(WebhookDelivery, Event, WebhookSubscription)
                    .join(Event, Event.id == WebhookDelivery.event_id)
                    .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.webhook_id)
                    .where(WebhookDelivery.id == delivery_id)
                )
            ).first()
        if found is None:
            raise ApplicationError(f"delivery {delivery_id} does not exist", non_retryable=True)
        delivery, event, subscription = found
        if delivery.status != "pending":
            return delivery.status
        if subscription.deleted_at is not None or not subscription.active:
            state = "deleted" if subscription.deleted_at is not None else "paused"
            reason = f"not sent: webhook {subscription.id} is {state}"
            await self._record(delivery_id, "failed", None, reason, attempted=False)
            return "failed"

        body = json.dumps(event_body(event), separators=(",", ":")).encode()
        now = datetime.now(UTC)
        secrets = live_secrets(
            subscription.secret,
            subscription.previous_secret,
            subscription.previous_secret_until,
            now,
        )
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Openlines-Event": event.type,
            "X-Openlines-Delivery": str(delivery_id),
            **signed_headers(secrets, body, now),
        }
        code, error, refused = await self._post(subscription.url, body, headers)
        delivered = code is not None and 200 <= code < 300
        retryable = not refused and (
            code is None or not (400 <= code < 500) or code in RETRYABLE_4XX
        )
        if delivered:
            status = "delivered"
        elif not retryable or _last_attempt():
            status = "failed"
        else:
            status = "pending"
        await self._record(delivery_id, status, code, error)
        if delivered:
            return status
        # The URL is not named: it may hold a token of the subscriber's.
        raise ApplicationError(
            f"delivery {delivery_id} to webhook {subscription.id}: {error}",
            non_retryable=not retryable,
        )

    async def _post(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int | None, str | None, bool]:
        """The answer's status code, unless 2xx what went wrong, and whether the URL was
        refused before sending (it leads to a private address). The answer's body is not
        read: only its status matters, and a receiver could send any amount. Errors are
        generic: the operating system's detail would map internal ports."""
        try:
            async with (
                asyncio.timeout(self._timeout_s),
                httpx.AsyncClient(timeout=self._timeout_s) as http,
            ):
                pinned = await egress.pin(url, self._allow_private)
                request = pinned.request(http, "POST", body, headers)
                response = await http.send(request, stream=True, follow_redirects=False)
                await response.aclose()
                code = response.status_code
        except egress.Refused as refused:
            return None, f"not sent: {refused}", True
        except egress.Unresolved as unresolved:
            return None, str(unresolved), False
        except TimeoutError:
            return None, f"no answer within {self._timeout_s:g} s", False
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            if isinstance(error, httpx.InvalidURL):
                return None, "not sent: the URL is not valid", True
            return None, egress.generic_error(error), False
        if 200 <= code < 300:
            return code, None, False
        return code, _clean(f"HTTP {code} {response.reason_phrase}".strip()), False

    async def _record(
        self,
        delivery_id: int,
        status: str,
        code: int | None,
        error: str | None,
        attempted: bool = True,
    ) -> None:
        """Count the attempt and its outcome; a row already final is left as it is."""
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == "pending")
                .values(
                    attempts=WebhookDelivery.attempts + int(attempted),
                    status=status,
                    last_status_code=code,
                    last_error=error,
                    delivered_at=datetime.now(UTC) if status == "delivered" else None,
                )
            )
