"""A ``webhook`` channel end to end through HTTP: signed inbound messages, every message to
the client POSTed (signed) to the receiver with its displayed sender, retries, failures and
re-sends, receipts and secret rotation."""

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from api.channel_auth import DENIED
from channels.webhook.signing import signed_headers, verify
from core.events.models import Event
from core.line_settings import LineSettings
from core.models import Message
from tests.channels.receiver import Receiver
from tests.integration.conftest import System

DEFAULTS = LineSettings()


async def webhook_line(
    system: System, receiver: Receiver, members: list[int], settings: dict[str, Any] | None = None
) -> tuple[int, str]:
    """A line named Acme, of ``members``, with a webhook channel POSTing to the receiver:
    (channel, secret)."""
    line_id, _, _ = await system.line(members, {"name": "Acme", **(settings or {})})
    created = await system.admin.post(
        f"/v1/lines/{line_id}/channels", json={"type": "webhook", "config": {"url": receiver.url}}
    )
    assert created.status_code == 201, created.text
    return created.json()["id"], created.json()["secret"]


async def signed(
    system: System, path: str, secret: str, body: dict[str, Any], at: datetime | None = None
) -> httpx.Response:
    raw = json.dumps(body).encode()
    headers = signed_headers(secret, raw, at or datetime.now(UTC))
    headers["Content-Type"] = "application/json"
    return await system.admin.post(path, content=raw, headers=headers)


async def client_writes(
    system: System, channel: int, secret: str, chat: str, message: str, text: str = "Hello"
) -> httpx.Response:
    body = {
        "chat": {"external_id": chat, "name": "Bob"},
        "message": {"external_id": message, "text": text},
    }
    return await signed(system, f"/v1/channels/{channel}/messages", secret, body)


async def received(receiver: Receiver, count: int, timeout_s: float = 20) -> list[dict[str, Any]]:
    """The first ``count`` bodies the receiver got, once it has them."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len(receiver.requests) < count:
        assert asyncio.get_running_loop().time() < deadline, receiver.requests
        await asyncio.sleep(0.05)
    return [request.json for request in receiver.requests[:count]]


async def messages(system: System, dialog_id: int) -> list[dict[str, Any]]:
    answer = await system.admin.get(f"/v1/dialogs/{dialog_id}/messages")
    assert answer.status_code == 200, answer.text
    result: list[dict[str, Any]] = answer.json()["items"]
    return result


async def message_when(system: System, message_id: int, status: str) -> dict[str, Any]:
    """The message once its delivery status is ``status``."""
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        async with system.app.state.sessions() as session:
            row = await session.get(Message, message_id)
        assert row is not None
        if row.delivery_status == status:
            return {"status": row.delivery_status, "error": row.delivery_error}
        assert asyncio.get_running_loop().time() < deadline, (
            row.delivery_status,
            row.delivery_error,
        )
        await asyncio.sleep(0.05)


async def test_a_client_on_a_webhook_channel_gets_every_message_with_its_sender(
    system: System, receiver: Receiver
):
    ann = await system.operator("Ann")
    channel, secret = await webhook_line(system, receiver, [ann], {"rating_wait": 600})
    written = await client_writes(system, channel, secret, "wh-1", "m-1")
    assert written.status_code == 202, written.text
    dialog_id = written.json()["dialog_id"]
    await system.dialog_when(dialog_id, lambda d: d["offered_to"] == [ann])
    for action, body in (("accept", {}), ("messages", {"text": "Hi Bob!"}), ("close", {})):
        answer = await system.admin.post(
            f"/v1/dialogs/{dialog_id}/{action}", json={"operator_id": ann, **body}
        )
        assert answer.status_code == 200, answer.text

    bodies = await received(receiver, 4)

    closing = DEFAULTS.close.text, DEFAULTS.rating.text_texts.request
    assert [b["text"] for b in bodies] == [DEFAULTS.welcome.text, "Hi Bob!", *closing]
    assert [b["sender"]["name"] for b in bodies] == ["Acme", "Ann", "Acme", "Acme"]
    assert [b["rating_request"] for b in bodies] == [False, False, False, True]
    assert {b["chat_external_id"] for b in bodies} == {"wh-1"}
    for request in receiver.requests:  # each signed with the channel secret
        verify(request.headers, request.body, [secret], datetime.now(UTC))
        assert request.headers["X-Openlines-Delivery"] == str(request.json["message_id"])
    for sent in bodies:  # the status is written just after the receiver answered
        await message_when(system, sent["message_id"], "sent")
    listed = await messages(system, dialog_id)
    assert [(m["author"], m["delivery_status"]) for m in listed] == [
        ("client", None),
        ("system", "sent"),
        ("operator", "sent"),
        ("system", "sent"),
        ("system", "sent"),
    ]

    rated = await client_writes(system, channel, secret, "wh-1", "m-2", "1")
    assert rated.status_code == 202, rated.text
    final = await system.dialog_when(dialog_id, lambda d: d["rating"]["client"] is not None)
    assert final["rating"]["client"] == "like"


async def first_text(system: System, dialog_id: int) -> int:
    """The id of the dialog's first automatic text (the welcome), once it is stored."""
    deadline = asyncio.get_running_loop().time() + 20
    while not (texts := [m for m in await messages(system, dialog_id) if m["author"] == "system"]):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    text_id: int = texts[0]["id"]
    return text_id


async def test_a_receiver_that_fails_twice_gets_the_message_once_it_answers(
    system: System, receiver: Receiver
):
    receiver.answer(500, 502)  # then 200
    ann = await system.operator("Ann")
    channel, secret = await webhook_line(system, receiver, [ann])
    written = await client_writes(system, channel, secret, "wh-2", "m-1")

    welcome = await first_text(system, written.json()["dialog_id"])

    assert await message_when(system, welcome, "sent") == {"status": "sent", "error": None}
    assert len(receiver.requests) == 3
    assert {r.headers["X-Openlines-Delivery"] for r in receiver.requests} == {str(welcome)}


async def test_a_refused_message_fails_is_told_and_goes_again_on_resend(
    system: System, receiver: Receiver
):
    receiver.answer(410)
    ann = await system.operator("Ann")
    channel, secret = await webhook_line(system, receiver, [ann])
    written = await client_writes(system, channel, secret, "wh-3", "m-1")
    welcome = await first_text(system, written.json()["dialog_id"])

    failed = await message_when(system, welcome, "failed")

    assert "410" in (failed["error"] or "")
    async with system.app.state.sessions() as session:
        told = await session.scalar(
            select(func.count()).select_from(Event).where(Event.type == "message.failed")
        )
    assert told == 1
    resent = await system.admin.post(f"/v1/messages/{welcome}/resend")
    assert resent.status_code == 202, resent.text
    assert resent.json()["delivery_status"] == "pending"
    assert await message_when(system, welcome, "sent") == {"status": "sent", "error": None}
    assert len(receiver.requests) == 2


async def test_unsigned_stale_or_wrongly_signed_messages_are_401_and_store_nothing(
    system: System, receiver: Receiver
):
    channel, secret = await webhook_line(system, receiver, [])
    body = {"chat": {"external_id": "wh-4"}, "message": {"external_id": "m-1", "text": "Hi"}}
    path = f"/v1/channels/{channel}/messages"
    stale = datetime.now(UTC) - timedelta(minutes=6)

    answers = [
        await system.admin.post(path, json=body),  # no signature
        await signed(system, path, "not-the-secret", body),
        await signed(system, path, secret, body, at=stale),
    ]

    assert [a.status_code for a in answers] == [401, 401, 401]
    assert all(a.headers["content-type"] == "application/problem+json" for a in answers)
    async with system.app.state.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 0
    first = await signed(system, path, secret, body)
    again = await signed(system, path, secret, body)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == {**first.json(), "duplicate": True}


async def test_a_rating_button_on_a_webhook_channel_must_be_signed(
    system: System, receiver: Receiver
):
    ann = await system.operator("Ann")
    channel, secret = await webhook_line(system, receiver, [ann], {"rating_wait": 600})
    dialog_id = (await client_writes(system, channel, secret, "wh-6", "m-1")).json()["dialog_id"]
    await system.dialog_when(dialog_id, lambda d: d["offered_to"] == [ann])
    for action in ("accept", "close"):
        answer = await system.admin.post(
            f"/v1/dialogs/{dialog_id}/{action}", json={"operator_id": ann}
        )
        assert answer.status_code == 200, answer.text
    path = f"/v1/dialogs/{dialog_id}/rating"

    as_bearer = await system.admin.post(
        path, json={"value": "like"}, headers={"Authorization": f"Bearer {secret}"}
    )
    liked = await signed(system, path, secret, {"value": "like"})

    assert as_bearer.status_code == 401
    assert as_bearer.json()["detail"] == DENIED
    assert liked.status_code == 200, liked.text
    assert liked.json()["rating"]["client"] == "like"


async def test_receipts_move_messages_forward_and_a_rotated_secret_verifies_for_a_day(
    system: System, receiver: Receiver
):
    ann = await system.operator("Ann")
    channel, secret = await webhook_line(system, receiver, [ann])
    written = await client_writes(system, channel, secret, "wh-5", "m-1")
    welcome = await first_text(system, written.json()["dialog_id"])
    await message_when(system, welcome, "sent")
    receipts = f"/v1/channels/{channel}/receipts"

    read = await signed(system, receipts, secret, {"message_ids": [welcome], "status": "read"})
    late = await signed(system, receipts, secret, {"message_ids": [welcome], "status": "delivered"})

    assert (read.json(), late.json()) == ({"updated": 1}, {"updated": 0})  # never backwards
    assert (await message_when(system, welcome, "read"))["status"] == "read"
    rotated = await system.admin.post(f"/v1/channels/{channel}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != secret
    old = await client_writes(system, channel, secret, "wh-5", "m-2", "still me")
    new = await client_writes(system, channel, new_secret, "wh-5", "m-3", "me again")
    assert (old.status_code, new.status_code) == (202, 202)


async def test_a_hidden_operator_speaks_under_the_lines_hidden_identity(
    system: System, receiver: Receiver
):
    ann = await system.operator("Ann")
    hidden = {"operator_display": "hidden", "hidden_identity": {"name": "Acme support"}}
    line_id, _, _ = await system.line([ann], {"name": "Acme"}, **hidden)
    created = await system.admin.post(
        f"/v1/lines/{line_id}/channels", json={"type": "webhook", "config": {"url": receiver.url}}
    )
    channel, secret = created.json()["id"], created.json()["secret"]
    written = await client_writes(system, channel, secret, "wh-6", "m-1")
    dialog_id = written.json()["dialog_id"]
    await system.dialog_when(dialog_id, lambda d: d["offered_to"] == [ann])

    answer = await system.admin.post(
        f"/v1/dialogs/{dialog_id}/messages", json={"operator_id": ann, "text": "Hello"}
    )

    assert answer.status_code == 200, answer.text
    bodies = await received(receiver, 2)
    assert bodies[1]["sender"] == {"name": "Acme support", "avatar_url": None, "position": None}
