"""Sending a message on a webhook channel: one signed JSON POST to the configured URL.

The receiver's answer decides what happens next: a 2xx took the message; 429, 408, 425 and
5xx (and no answer at all) are worth trying again; any other 4xx, and a redirect, are not,
since the same request would get the same answer. Redirects are not followed: the signed
request goes only where the admin said.
"""

import asyncio
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx
from pydantic import ValidationError

from channels.contract import DeliveryError, Outgoing, Sent, Target
from channels.webhook.schemas import WebhookConfig, WebhookMessage
from channels.webhook.signing import signed_headers
from core import egress

TIMEOUT_S = 10.0
"""The whole request, answer included, must be done within this."""
USER_AGENT = "openlines"
ANSWER_TEXT_MAX = 200
"""Characters of the receiver's answer kept in a failure's reason."""
# Bytes of an error answer read (enough for ANSWER_TEXT_MAX characters of any UTF-8):
# a receiver could answer with any amount.
_ANSWER_READ_MAX = 4096
RETRYABLE_4XX = frozenset({408, 425, 429})
_DELTA_SECONDS = re.compile(r"[0-9]{1,10}")
_REDACTED = "[secret]"


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """A ``Retry-After`` header in seconds from ``now``: delta-seconds or an HTTP-date
    (a date already past is 0); None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, as HTTP-dates are
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _clean(text: str, secrets: Sequence[str]) -> str:
    """One printable line (no NUL, which PostgreSQL text refuses), the secrets blanked out,
    cut to ``ANSWER_TEXT_MAX`` characters.

    The secrets go before the cut, so no part of one can be left straddling the end.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, _REDACTED)
    printable = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(printable.split())[:ANSWER_TEXT_MAX]


async def _answer_text(response: httpx.Response, deadline: float) -> str:
    """The start of an error answer's body, as far as it arrives by ``deadline``."""
    data = b""
    try:
        async with asyncio.timeout_at(deadline):
            async for chunk in response.aiter_bytes():
                data += chunk
                if len(data) >= _ANSWER_READ_MAX:
                    break
    except (TimeoutError, httpx.HTTPError):
        pass  # what came is enough to explain the status
    codec = response.charset_encoding or "utf-8"
    try:
        return data[:_ANSWER_READ_MAX].decode(codec, errors="replace")
    except LookupError:  # a charset Python does not know
        return data[:_ANSWER_READ_MAX].decode("utf-8", errors="replace")


def _failure(status: int, text: str, retry_after: float | None) -> DeliveryError:
    """The ``DeliveryError`` for a non-2xx answer (``text`` already cleaned)."""
    reason = f"the receiver answered HTTP {status}"
    if 300 <= status < 400:
        reason += " (a redirect: not followed)"
    if text:
        reason += f": {text}"
    if status == 429:
        return DeliveryError(reason, retry_after=retry_after)
    permanent = 300 <= status < 500 and status not in RETRYABLE_4XX
    return DeliveryError(reason, permanent=permanent)


async def send(target: Target, outgoing: Outgoing, http: httpx.AsyncClient) -> Sent:
    """POST ``outgoing`` to the channel's URL, signed with its secret; ``Sent`` on a 2xx.

    Raises ``DeliveryError`` otherwise. ``X-Openlines-Delivery`` is the message id, the same
    on every retry, so the receiver can drop a copy it already has.
    """
    try:
        config = WebhookConfig.model_validate(target.config)
    except ValidationError as error:
        # Only where and what, not the input: the stored config is not echoed into logs.
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in error.errors()
        )
        raise DeliveryError(
            f"the channel's webhook config is invalid: {problems}", permanent=True
        ) from None
    body = WebhookMessage.of(outgoing).model_dump_json().encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Openlines-Delivery": str(outgoing.message_id),
        **signed_headers(target.secrets, body, datetime.now(UTC)),
    }
    deadline = asyncio.get_running_loop().time() + TIMEOUT_S
    try:
        async with asyncio.timeout_at(deadline):
            pinned = await egress.pin(str(config.url), target.allow_private)
            request = pinned.request(http, "POST", body, headers)
            response = await http.send(request, stream=True, follow_redirects=False)
    except egress.Refused as refused:
        raise DeliveryError(f"not sent: {refused}", permanent=True) from None
    except egress.Unresolved as unresolved:
        raise DeliveryError(str(unresolved)) from None
    except (TimeoutError, httpx.TimeoutException):
        raise DeliveryError(f"the receiver did not answer within {TIMEOUT_S:g} s") from None
    except httpx.HTTPError as error:
        raise DeliveryError(egress.generic_error(error)) from None
    try:
        status = response.status_code
        if 200 <= status < 300:
            return Sent()
        text = _clean(await _answer_text(response, deadline), target.secrets)
        retry_after = retry_after_seconds(response.headers.get("retry-after"), datetime.now(UTC))
    finally:
        await response.aclose()
    raise _failure(status, text, retry_after)
