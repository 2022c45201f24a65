"""Attachments an ``api`` channel's client sends: kept as the references it gave, shown in
message reads, and not fetched by openlines (Telegram's are: tests/api/test_telegram_connect.py)."""

from fastapi import FastAPI
from httpx import AsyncClient

from tests.api.test_channel_move import add_channel, assert_problem, create_line, ok
from tests.conftest import client_for

PHOTO = {"kind": "photo", "ref": "https://files.example/p/1.jpg", "mime_type": "image/jpeg"}


async def test_an_api_clients_attachments_are_shown_as_it_gave_them(
    app: FastAPI, admin: AsyncClient
) -> None:
    channel = await add_channel(admin, await create_line(admin))
    body = {
        "chat": {"external_id": "att-1"},
        "message": {"external_id": "m-1", "text": "[photo]", "attachments": [PHOTO]},
    }
    async with client_for(app, channel["secret"]) as as_channel:
        filed = ok(await as_channel.post(f"/v1/channels/{channel['id']}/messages", json=body), 202)

    listed = ok(await admin.get(f"/v1/dialogs/{filed['dialog_id']}/messages"))["items"]
    fetched = await admin.get(f"/v1/messages/{filed['message_id']}/attachments/0")

    assert listed[0]["attachments"] == [{**PHOTO, "name": None, "url": None}]
    assert "its client keeps the file" in assert_problem(fetched, 409)["detail"]


async def test_a_bad_attachment_is_a_422_naming_its_field_and_stores_nothing(
    app: FastAPI, admin: AsyncClient
) -> None:
    channel = await add_channel(admin, await create_line(admin))
    bad = {**PHOTO, "kind": "sticker"}
    too_many = [PHOTO] * 11
    async with client_for(app, channel["secret"]) as as_channel:
        answers = [
            await as_channel.post(
                f"/v1/channels/{channel['id']}/messages",
                json={
                    "chat": {"external_id": "att-2"},
                    "message": {"external_id": f"m-{n}", "text": "x", "attachments": given},
                },
            )
            for n, given in enumerate(([bad], too_many))
        ]

    fields = [assert_problem(a, 422)["errors"][0]["field"] for a in answers]
    assert fields == ["message.attachments[0].kind", "message.attachments"]
    assert ok(await admin.get("/v1/dialogs"))["items"] == []
