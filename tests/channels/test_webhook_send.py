"""The webhook connector's ``send`` against a local receiver: the signed POST it makes and
how each kind of answer (or none) becomes ``Sent`` or a ``DeliveryError``."""

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from channels.contract import DeliveryError, Outgoing, Sender, Sent, Target
from channels.webhook import CONNECTOR
from channels.webhook import send as send_module
from channels.webhook.schemas import WebhookConfig
from channels.webhook.send import retry_after_seconds, send
from channels.webhook.signing import verify
from tests.channels.receiver import Receiver, Reply

SECRET = "webhook-channel-secret-do-not-leak"
OUTGOING = Outgoing(
    message_id=42,
    dialog_id=7,
    chat_external_id="client-1",
    text="Hello, how can I help? ✓",
    sender=Sender(name="Anna", avatar_url="https://cdn.example/anna.png", position=None),
    created_at=datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC),
    rating_request=True,
)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def target(url: str, secret: str = SECRET) -> Target:
    return Target(channel_id=3, config={"url": url}, secrets=(secret,), allow_private=True)


async def failed(url: str, http: httpx.AsyncClient) -> DeliveryError:
    with pytest.raises(DeliveryError) as raised:
        await send(target(url), OUTGOING, http)
    assert SECRET not in raised.value.reason
    return raised.value


def closed_port_url() -> str:
    """A local URL nothing listens on (the port was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def test_connector() -> None:
    assert CONNECTOR.type == "webhook"
    assert CONNECTOR.config_model is WebhookConfig
    assert CONNECTOR.send is send


@pytest.mark.parametrize("url", ["https://example.com/hook", "http://10.0.0.5:8080/in"])
def test_config_takes_http_urls(url: str) -> None:
    assert str(WebhookConfig.model_validate({"url": url}).url) == url


@pytest.mark.parametrize(
    "config",
    [
        {"url": "ftp://example.com/hook"},
        {"url": "example.com/hook"},
        {"url": "https://example.com", "secret": "x"},
        {},
    ],
)
def test_config_refuses(config: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        WebhookConfig.model_validate(config)


async def test_body_and_headers(receiver: Receiver, http: httpx.AsyncClient) -> None:
    before = datetime.now(UTC)
    assert await send(target(receiver.url), OUTGOING, http) == Sent()
    (request,) = receiver.requests
    assert request.path == "/hook"
    assert request.json == {
        "event": "message.created",
        "dialog_id": 7,
        "chat_external_id": "client-1",
        "message_id": 42,
        "text": "Hello, how can I help? ✓",
        "sender": {"name": "Anna", "avatar_url": "https://cdn.example/anna.png", "position": None},
        "created_at": "2025-03-01T12:00:05Z",
        "rating_request": True,
    }
    assert datetime.fromisoformat(request.json["created_at"]) == OUTGOING.created_at
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "openlines"
    assert request.headers["x-openlines-delivery"] == "42"
    assert abs(int(request.headers["x-openlines-timestamp"]) - before.timestamp()) <= 2
    verify(request.headers, request.body, [SECRET], datetime.now(UTC))


async def test_same_delivery_id_on_retry(receiver: Receiver, http: httpx.AsyncClient) -> None:
    receiver.answer(500)
    await failed(receiver.url, http)
    await send(target(receiver.url), OUTGOING, http)
    assert [r.headers["x-openlines-delivery"] for r in receiver.requests] == ["42", "42"]


@pytest.mark.parametrize("status", [200, 201, 202, 204])
async def test_2xx_is_sent(status: int, receiver: Receiver, http: httpx.AsyncClient) -> None:
    receiver.answer(status)
    assert await send(target(receiver.url), OUTGOING, http) == Sent()


@pytest.mark.parametrize("status", [500, 502, 503, 408, 425])
async def test_transient(status: int, receiver: Receiver, http: httpx.AsyncClient) -> None:
    receiver.answer(Reply(status, text="  try\nagain\x00 later  "))
    error = await failed(receiver.url, http)
    assert not error.permanent
    assert error.retry_after is None
    assert error.reason == f"the receiver answered HTTP {status}: try again later"


async def test_scripted_retries_then_sent(receiver: Receiver, http: httpx.AsyncClient) -> None:
    receiver.answer(500, 500, 200)
    for _ in range(2):
        assert not (await failed(receiver.url, http)).permanent
    assert await send(target(receiver.url), OUTGOING, http) == Sent()
    assert len(receiver.requests) == 3


async def test_429_retry_after_seconds(receiver: Receiver, http: httpx.AsyncClient) -> None:
    receiver.answer(Reply(429, {"Retry-After": "30"}, "slow down"))
    error = await failed(receiver.url, http)
    assert (error.permanent, error.retry_after) == (False, 30.0)
    assert error.reason == "the receiver answered HTTP 429: slow down"


async def test_429_retry_after_http_date(receiver: Receiver, http: httpx.AsyncClient) -> None:
    when = datetime.now(UTC) + timedelta(seconds=120)
    receiver.answer(Reply(429, {"Retry-After": format_datetime(when, usegmt=True)}))
    error = await failed(receiver.url, http)
    assert not error.permanent
    assert error.retry_after is not None and 115 <= error.retry_after <= 120


@pytest.mark.parametrize("header", [{}, {"Retry-After": "soon"}, {"Retry-After": "-5"}])
async def test_429_without_readable_retry_after(
    header: dict[str, str], receiver: Receiver, http: httpx.AsyncClient
) -> None:
    receiver.answer(Reply(429, header))
    error = await failed(receiver.url, http)
    assert (error.permanent, error.retry_after) == (False, None)


def test_retry_after_parsing() -> None:
    now = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("0", now) == 0.0
    assert retry_after_seconds(" 120 ", now) == 120.0
    assert retry_after_seconds("Sat, 01 Mar 2025 12:01:00 GMT", now) == 60.0
    assert retry_after_seconds("Sat, 01 Mar 2025 11:00:00 GMT", now) == 0.0  # already past
    for unreadable in (None, "", "1.5", "tomorrow", "Sat, 99 Mar 2025 12:01:00 GMT"):
        assert retry_after_seconds(unreadable, now) is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
async def test_4xx_is_permanent(status: int, receiver: Receiver, http: httpx.AsyncClient) -> None:
    receiver.answer(Reply(status, text="no such chat"))
    error = await failed(receiver.url, http)
    assert error.permanent
    assert error.reason == f"the receiver answered HTTP {status}: no such chat"


async def test_redirect_not_followed(receiver: Receiver, http: httpx.AsyncClient) -> None:
    receiver.answer(Reply(301, {"Location": f"{receiver.url}/moved"}, "moved"))
    async with httpx.AsyncClient(follow_redirects=True) as following:
        error = await failed(receiver.url, following)
    assert error.permanent
    assert "HTTP 301" in error.reason and "not followed" in error.reason
    assert [r.path for r in receiver.requests] == ["/hook"]


async def test_answer_text_cut_to_200(receiver: Receiver, http: httpx.AsyncClient) -> None:
    receiver.answer(Reply(500, text="é" * 50_000))
    error = await failed(receiver.url, http)
    assert error.reason == "the receiver answered HTTP 500: " + "é" * 200


async def test_connection_refused_is_transient(http: httpx.AsyncClient) -> None:
    error = await failed(closed_port_url(), http)
    assert not error.permanent
    assert error.reason == "could not connect to the receiver"  # no Errno: ports stay unmapped


async def test_timeout_is_transient(
    receiver: Receiver, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert send_module.TIMEOUT_S == 10.0
    monkeypatch.setattr(send_module, "TIMEOUT_S", 0.2)
    receiver.answer(Reply(200, delay=1.0))
    error = await failed(receiver.url, http)
    assert not error.permanent
    assert error.reason == "the receiver did not answer within 0.2 s"


async def test_invalid_stored_config_is_permanent(http: httpx.AsyncClient) -> None:
    with pytest.raises(DeliveryError) as raised:
        await send(target("ftp://example.com/x"), OUTGOING, http)
    assert raised.value.permanent
    assert "ftp" not in raised.value.reason  # the input is not echoed


async def test_secret_never_in_reason(receiver: Receiver, http: httpx.AsyncClient) -> None:
    """Not even when the receiver echoes it, nor straddling the 200-character cut."""
    receiver.answer(
        Reply(500, text=f"bad key {SECRET}"),
        Reply(403, text="x" * 190 + SECRET),
        Reply(429, text=SECRET),
    )
    reasons = [(await failed(receiver.url, http)).reason for _ in range(3)]
    reasons.append((await failed(closed_port_url(), http)).reason)
    for reason in reasons:
        assert SECRET not in reason
        assert SECRET[:8] not in reason
    assert reasons[0] == "the receiver answered HTTP 500: bad key [secret]"


async def test_a_receiver_on_a_private_address_is_refused_unless_allowed(
    receiver: Receiver, http: httpx.AsyncClient
) -> None:
    inside = Target(channel_id=3, config={"url": receiver.url}, secrets=(SECRET,))
    with pytest.raises(DeliveryError) as refused:
        await send(inside, OUTGOING, http)
    assert refused.value.permanent
    assert "private, loopback, link-local or reserved address" in refused.value.reason
    assert receiver.requests == []


async def test_during_a_rotation_both_secrets_sign(receiver: Receiver, http: httpx.AsyncClient):
    rotating = Target(3, {"url": receiver.url}, ("new-secret-0123456789", SECRET), True)
    await send(rotating, OUTGOING, http)
    (request,) = receiver.requests
    assert request.headers["x-openlines-signature"].count("sha256=") == 2
    for secret in rotating.secrets:  # a receiver holding either one verifies
        verify(request.headers, request.body, [secret], datetime.now(UTC))
