"""A line's chat-bot through the HTTP API: it takes a client's first dialog, answers, and hands
it to the operators or closes it, acting with its own ``bot`` key."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from tests.conftest import client_for
from tests.integration.conftest import System


async def bot_line(system: System, operators: list[int], **bot: Any) -> tuple[int, int, str, int]:
    """A bot and a line whose dialogs it takes first: (line, channel, secret, bot)."""
    created = await system.admin.post("/v1/bots", json={"name": "Helper"})
    assert created.status_code == 201, created.text
    bot_id: int = created.json()["id"]
    settings = {"bot": {"enabled": True, "bot_id": bot_id, **bot}}
    line_id, channel, secret = await system.line(operators, settings, handover_after=3600)
    return line_id, channel, secret, bot_id


@asynccontextmanager
async def as_bot(system: System, bot_id: int) -> AsyncIterator[httpx.AsyncClient]:
    issued = await system.admin.post("/v1/api-keys", json={"role": "bot", "bot_id": bot_id})
    assert issued.status_code == 201, issued.text
    async with client_for(system.app, issued.json()["key"]) as client:
        yield client


async def with_the_bot(system: System, channel: int, secret: str, chat: str) -> int:
    """A client's first message, once the line's bot holds its dialog."""
    written = await system.client_writes(channel, secret, chat, f"{chat}-m1", "I need a refund")
    assert written.status_code == 202, written.text
    dialog_id: int = written.json()["dialog_id"]
    await system.dialog_when(dialog_id, lambda d: d["status"] == "bot")
    return dialog_id


async def test_the_bot_answers_and_hands_the_dialog_to_the_operator(system: System):
    ann = await system.operator("Ann")
    _, channel, secret, bot_id = await bot_line(system, [ann])
    dialog_id = await with_the_bot(system, channel, secret, "c-1")

    async with as_bot(system, bot_id) as bot:
        held = (await bot.get(f"/v1/dialogs/{dialog_id}")).json()
        assert (held["status"], held["bot_id"], held["offered_to"]) == ("bot", bot_id, [])
        assert [d["id"] for d in (await bot.get("/v1/dialogs")).json()["items"]] == [dialog_id]

        replied = await bot.post(
            f"/v1/dialogs/{dialog_id}/messages", json={"text": "What is your order number?"}
        )
        assert replied.status_code == 200, replied.text
        assert (replied.json()["status"], replied.json()["bot_id"]) == ("bot", bot_id)

        handed = await bot.post(f"/v1/dialogs/{dialog_id}/bot-handover")
        assert handed.status_code == 200, handed.text
        assert handed.json()["status"] == "queued"
        offered = await system.dialog_when(dialog_id, lambda d: d["offered_to"] == [ann])
        assert (offered["status"], offered["bot_id"]) == ("queued", None)  # bot.leave: queue

        # The dialog left the bot: no more of it for the bot's key.
        again = await bot.post(f"/v1/dialogs/{dialog_id}/bot-handover")
        assert again.status_code == 403, again.text
        assert (await bot.get(f"/v1/dialogs/{dialog_id}")).status_code == 403

    accepted = await system.admin.post(f"/v1/dialogs/{dialog_id}/accept", json={"operator_id": ann})
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["status"], accepted.json()["operator_id"]) == ("accepted", ann)
    messages = (await system.admin.get(f"/v1/dialogs/{dialog_id}/messages")).json()["items"]
    assert [(m["author"], m["operator_id"], m["text"]) for m in messages] == [
        ("client", None, "I need a refund"),
        ("bot", None, "What is your order number?"),
    ]


async def test_the_bot_closes_a_dialog_and_staying_in_it_keeps_seeing_it(system: System):
    ann = await system.operator("Ann")
    _, channel, secret, bot_id = await bot_line(system, [ann], leave="close")
    dialog_id = await with_the_bot(system, channel, secret, "c-1")

    async with as_bot(system, bot_id) as bot:
        handed = await bot.post(f"/v1/dialogs/{dialog_id}/bot-handover")
        assert handed.status_code == 200, handed.text
        offered = await system.dialog_when(dialog_id, lambda d: d["offered_to"] == [ann])
        assert offered["bot_id"] == bot_id  # bot.leave: close, the bot stays in the dialog
        # ... and writes in it, but only the operators close it now
        replied = await bot.post(f"/v1/dialogs/{dialog_id}/messages", json={"text": "Hold on"})
        assert replied.status_code == 200, replied.text
        refused = await bot.post(f"/v1/dialogs/{dialog_id}/close")
        assert refused.status_code == 409, refused.text

        # A new client's dialog, which the bot settles itself.
        second = await with_the_bot(system, channel, secret, "c-2")
        closed = await bot.post(f"/v1/dialogs/{second}/close")
        assert closed.status_code == 200, closed.text
        assert (closed.json()["status"], closed.json()["close_reason"]) == ("closed", "bot")
        final = await bot.get(f"/v1/dialogs/{second}")
        assert (final.json()["status"], final.json()["bot_id"]) == ("closed", bot_id)
