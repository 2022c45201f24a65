"""A ``telegram`` channel end to end through HTTP, with the worker and the fake Bot API: the
fake replays recorded updates to our webhook, and records what the worker sends back."""

import asyncio
import copy
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

from core.events.models import Event
from core.line_settings import LineSettings
from core.models import Chat, Message
from tests.channels.telegram_fake import TOKEN, FakeTelegram, recorded_update
from tests.conftest import ADMIN_KEY, client_for
from tests.integration.conftest import System, running_worker
from tests.integration.test_webhook_channel import first_text, message_when, messages

DEFAULTS = LineSettings()
PUBLIC_URL = "http://openlines.test"  # the in-process app: the fake POSTs through ASGI
CHAT_ID = 48213579  # the recorded updates' private chat


@pytest.fixture
async def system(
    make_app: Callable[..., Awaitable[FastAPI]],
    temporal: WorkflowEnvironment,
    task_queue: str,
    telegram_fake: FakeTelegram,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[System]:
    """The system with the API and the worker's deliveries both pointed at the fake (the
    worker reads its settings from the environment, as ``openlines worker`` does)."""
    monkeypatch.setenv("OPENLINES_TELEGRAM_API_URL", telegram_fake.url)
    app = await make_app(
        task_queue=task_queue, telegram_api_url=telegram_fake.url, public_url=PUBLIC_URL
    )
    app.state.temporal = temporal.client
    async with running_worker(app, temporal, task_queue), client_for(app, ADMIN_KEY) as admin:
        yield System(app, admin, temporal, task_queue)


async def telegram_line(
    system: System, members: list[int], settings: dict[str, Any] | None = None
) -> int:
    """A line named Acme, of ``members``, with a telegram channel (its id)."""
    line_id, _, _ = await system.line(members, {"name": "Acme", **(settings or {})})
    created = await system.admin.post(
        f"/v1/lines/{line_id}/channels",
        json={"type": "telegram", "config": {"bot_token": TOKEN}},
    )
    assert created.status_code == 201, created.text
    channel_id: int = created.json()["id"]
    return channel_id


async def telegram_posts(
    system: System, telegram_fake: FakeTelegram, update: dict[str, Any], secret: str | None = None
) -> httpx.Response:
    """The fake POSTs ``update`` to our webhook, as Telegram does."""
    async with client_for(system.app, None) as http:
        return await telegram_fake.deliver(update, http=http, secret=secret)


async def sent(
    telegram_fake: FakeTelegram, count: int, timeout_s: float = 20
) -> list[dict[str, Any]]:
    """The first ``count`` messages the fake took, once it has them."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len(telegram_fake.sent) < count:
        assert asyncio.get_running_loop().time() < deadline, telegram_fake.sent
        await asyncio.sleep(0.05)
    return telegram_fake.sent[:count]


def pressed(button: str) -> dict[str, Any]:
    """The recorded callback query, pressing a button with this ``callback_data``."""
    update = copy.deepcopy(recorded_update("callback_rating"))
    update["callback_query"]["data"] = button
    return update


async def client_texts(system: System) -> list[str]:
    async with system.app.state.sessions() as session:
        rows = await session.scalars(select(Message).where(Message.author == "client"))
        return [row.text for row in rows]


async def test_a_telegram_client_is_answered_and_rates_with_a_button(
    system: System, telegram_fake: FakeTelegram
) -> None:
    ann = await system.operator("Ann")
    await telegram_line(system, [ann], {"rating_wait": 600})
    written = await telegram_posts(system, telegram_fake, recorded_update("private_text"))
    assert written.status_code == 200, written.text
    assert written.json()["outcome"] == "filed"
    dialog_id = written.json()["dialog_id"]
    await system.dialog_when(dialog_id, lambda d: d["offered_to"] == [ann])
    for action, body in (("accept", {}), ("messages", {"text": "Hi Anna & co!"}), ("close", {})):
        answer = await system.admin.post(
            f"/v1/dialogs/{dialog_id}/{action}", json={"operator_id": ann, **body}
        )
        assert answer.status_code == 200, answer.text

    messages_sent = await sent(telegram_fake, 4)

    closing = DEFAULTS.close.text, DEFAULTS.rating.text_texts.request
    texts = [DEFAULTS.welcome.text, "Hi Anna & co!", *closing]
    senders = ["Acme", "Ann", "Acme", "Acme"]
    assert [m["text"] for m in messages_sent] == [
        f"{n}\n{t}" for n, t in zip(senders, texts, strict=True)
    ]
    assert messages_sent[1]["html"] == "<b>Ann</b>\nHi Anna &amp; co!"
    assert {m["chat"]["id"] for m in messages_sent} == {CHAT_ID}
    assert ["reply_markup" in m for m in messages_sent] == [False, False, False, True]
    like = messages_sent[3]["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    listed = await messages(system, dialog_id)
    assert [m["author"] for m in listed] == ["client", "system", "operator", "system", "system"]
    for message in listed[1:]:  # the status is written just after Telegram answered
        assert (await message_when(system, message["id"], "sent"))["error"] is None

    rated = await telegram_posts(system, telegram_fake, pressed(like))

    assert rated.status_code == 200, rated.text
    assert rated.json()["outcome"] == "rated"
    final = await system.dialog_when(dialog_id, lambda d: d["rating"]["client"] is not None)
    assert final["rating"]["client"] == "like"
    answered = telegram_fake.calls_of("answerCallbackQuery")
    assert [c.params["callback_query_id"] for c in answered] == ["2070938127361029376"]
    again = await telegram_posts(system, telegram_fake, pressed(like))  # Telegram re-delivers
    assert again.json()["outcome"] == "duplicate"
    assert await client_texts(system) == [recorded_update("private_text")["message"]["text"], "1"]


async def test_a_button_when_no_rating_is_awaited_stores_nothing(
    system: System, telegram_fake: FakeTelegram
) -> None:
    await telegram_line(system, [])
    await telegram_posts(system, telegram_fake, recorded_update("private_text"))

    answer = await telegram_posts(system, telegram_fake, pressed("rating:like:1"))

    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "ignored"
    assert len(await client_texts(system)) == 1
    assert len(telegram_fake.calls_of("answerCallbackQuery")) == 1


async def test_a_redelivered_update_is_stored_once_an_edit_changes_it_and_forgeries_nothing(
    system: System, telegram_fake: FakeTelegram
) -> None:
    await telegram_line(system, [])
    update = recorded_update("private_text")

    forged = await telegram_posts(system, telegram_fake, update, secret="not-the-secret")
    first = await telegram_posts(system, telegram_fake, update)
    again = await telegram_posts(system, telegram_fake, update)
    edited = await telegram_posts(system, telegram_fake, recorded_update("edited_message"))

    assert forged.status_code == 401
    assert (first.status_code, again.status_code, edited.status_code) == (200, 200, 200)
    assert (first.json()["outcome"], again.json()["outcome"]) == ("filed", "duplicate")
    assert again.json()["message_id"] == first.json()["message_id"]
    assert edited.json() | {"update_id": 0} == {
        "update_id": 0,
        "outcome": "edited",
        "dialog_id": None,
        "message_id": first.json()["message_id"],
    }
    new_text = recorded_update("edited_message")["edited_message"]["text"]
    assert await client_texts(system) == [new_text]


async def test_a_shared_own_contact_gives_the_chat_its_phone(
    system: System, telegram_fake: FakeTelegram
) -> None:
    await telegram_line(system, [])

    answer = await telegram_posts(system, telegram_fake, recorded_update("contact_own"))

    assert answer.status_code == 200, answer.text
    phone = recorded_update("contact_own")["message"]["contact"]["phone_number"]
    async with system.app.state.sessions() as session:
        chat = await session.scalar(select(Chat).where(Chat.external_id == str(CHAT_ID)))
    assert chat is not None
    assert chat.phone == "+" + phone.lstrip("+")


async def test_a_429_is_waited_out_then_the_message_is_sent(
    system: System, telegram_fake: FakeTelegram
) -> None:
    telegram_fake.fail_next("sendMessage", 429, retry_after=1)
    ann = await system.operator("Ann")
    await telegram_line(system, [ann])
    written = await telegram_posts(system, telegram_fake, recorded_update("private_text"))

    welcome = await first_text(system, written.json()["dialog_id"])

    assert await message_when(system, welcome, "sent") == {"status": "sent", "error": None}
    assert len(telegram_fake.calls_of("sendMessage")) == 2
    assert len(telegram_fake.sent) == 1


async def test_a_blocked_bot_fails_the_message_and_notes_it_in_the_dialog(
    system: System, telegram_fake: FakeTelegram
) -> None:
    telegram_fake.fail_next("sendMessage", 403)
    ann = await system.operator("Ann")
    await telegram_line(system, [ann])
    written = await telegram_posts(system, telegram_fake, recorded_update("private_text"))
    welcome = await first_text(system, written.json()["dialog_id"])

    failed = await message_when(system, welcome, "failed")

    assert "bot was blocked by the user" in (failed["error"] or "")
    assert TOKEN.split(":")[1] not in (failed["error"] or "")
    async with system.app.state.sessions() as session:
        told = await session.scalar(
            select(func.count()).select_from(Event).where(Event.type == "message.failed")
        )
    assert told == 1
    listed = await system.admin.get(f"/v1/dialogs/{written.json()['dialog_id']}/messages")
    note = listed.json()["items"][-1]
    assert note["author"] == "note" and note["delivery_status"] is None
    assert note["text"].startswith(f"Message {welcome} did not reach the client: ")
    assert "bot was blocked by the user" in note["text"]
    not_for_client = await system.admin.post(f"/v1/messages/{note['id']}/resend")
    assert not_for_client.status_code == 409
    assert len(telegram_fake.sent) == 0
