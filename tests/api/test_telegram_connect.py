"""Connecting a telegram channel against the fake Bot API: getMe and setWebhook at
connection, the token kept out of every answer, nothing saved on failure, deleteWebhook on
delete, health from getWebhookInfo, and the inbound endpoint's checks (no worker needed)."""

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from core.models import Channel, Chat, Message
from tests.channels.telegram_fake import TOKEN, FakeTelegram, recorded_update
from tests.conftest import ADMIN_KEY, client_for

PUBLIC_URL = "https://ol.example.com"
OTHER_TOKEN = "7012345678:AAWrongTokenWrongTokenWrong123"


@pytest.fixture
async def tg_app(make_app: Callable[..., Any], telegram_fake: FakeTelegram) -> FastAPI:
    app: FastAPI = await make_app(telegram_api_url=telegram_fake.url, public_url=PUBLIC_URL)
    return app


@pytest.fixture
async def tg_admin(tg_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(tg_app, ADMIN_KEY) as client:
        yield client


async def new_line(admin: httpx.AsyncClient) -> int:
    response = await admin.post("/v1/lines", json={})
    assert response.status_code == 201, response.text
    line_id: int = response.json()["id"]
    return line_id


async def connect(admin: httpx.AsyncClient, line_id: int, token: str = TOKEN) -> httpx.Response:
    return await admin.post(
        f"/v1/lines/{line_id}/channels", json={"type": "telegram", "config": {"bot_token": token}}
    )


async def channel_count(app: FastAPI) -> int:
    async with app.state.sessions() as session:
        count: int = await session.scalar(select(func.count()).select_from(Channel)) or 0
    return count


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


async def test_connecting_checks_the_token_sets_the_webhook_and_never_shows_the_token(
    tg_app: FastAPI, tg_admin: httpx.AsyncClient, telegram_fake: FakeTelegram
) -> None:
    line_id = await new_line(tg_admin)

    created = await connect(tg_admin, line_id)

    assert created.status_code == 201, created.text
    channel_id = created.json()["id"]
    assert [c.method for c in telegram_fake.calls] == ["getMe", "setWebhook"]
    webhook = telegram_fake.calls_of("setWebhook")[0].params
    assert webhook["url"] == f"{PUBLIC_URL}/v1/channels/{channel_id}/telegram"
    assert len(webhook["secret_token"]) >= 32
    assert webhook["allowed_updates"] == ["message", "edited_message", "callback_query"]
    listed = await tg_admin.get(f"/v1/lines/{line_id}/channels")
    read = await tg_admin.get(f"/v1/channels/{channel_id}")
    for answer in (created, listed, read):
        assert answer.status_code == 200 or answer.status_code == 201, answer.text
        assert TOKEN not in answer.text
        assert TOKEN.split(":")[1] not in answer.text
        assert webhook["secret_token"] not in answer.text
    assert read.json()["config"] == {"bot_username": "openlines_test_bot"}
    async with tg_app.state.sessions() as session:
        row = await session.get(Channel, channel_id)
    assert row is not None
    assert row.config["bot_token"] == TOKEN
    assert row.config["webhook_secret"] == webhook["secret_token"]


async def test_a_refused_token_is_422_naming_it_and_saves_nothing(
    tg_app: FastAPI, tg_admin: httpx.AsyncClient, telegram_fake: FakeTelegram
) -> None:
    line_id = await new_line(tg_admin)

    refused = problem(await connect(tg_admin, line_id, OTHER_TOKEN), 422)
    malformed = problem(await connect(tg_admin, line_id, "not-a-token"), 422)

    assert [e["field"] for e in refused["errors"]] == ["config.bot_token"]
    assert [e["field"] for e in malformed["errors"]] == ["config.bot_token"]
    assert "AAWrongToken" not in str(refused) and "not-a-token" not in str(malformed)
    assert telegram_fake.calls_of("setWebhook") == []
    assert await channel_count(tg_app) == 0


@pytest.mark.parametrize("method", ["getMe", "setWebhook"])
async def test_telegram_failing_at_connection_is_503_and_saves_nothing(
    tg_app: FastAPI, tg_admin: httpx.AsyncClient, telegram_fake: FakeTelegram, method: str
) -> None:
    line_id = await new_line(tg_admin)
    telegram_fake.fail_next(method, 500)

    answer = await connect(tg_admin, line_id)

    body = problem(answer, 503)
    assert int(answer.headers["Retry-After"]) > 0
    assert TOKEN not in str(body)
    assert await channel_count(tg_app) == 0
    again = await connect(tg_admin, line_id)  # the line is free: nothing was kept
    assert again.status_code == 201, again.text


async def test_telegram_not_answering_at_connection_is_503(
    make_app: Callable[..., Any], telegram_fake: FakeTelegram
) -> None:
    app = await make_app(telegram_api_url="http://127.0.0.1:9", public_url=PUBLIC_URL)
    async with client_for(app, ADMIN_KEY) as admin:
        answer = await connect(admin, await new_line(admin))
    assert TOKEN not in str(problem(answer, 503))
    assert "Retry-After" in answer.headers
    assert await channel_count(app) == 0


async def test_the_same_bot_on_a_second_line_is_409(
    tg_admin: httpx.AsyncClient, telegram_fake: FakeTelegram
) -> None:
    first = await connect(tg_admin, await new_line(tg_admin))
    assert first.status_code == 201, first.text

    second = problem(await connect(tg_admin, await new_line(tg_admin)), 409)

    assert [e["field"] for e in second["errors"]] == ["config.bot_token"]
    assert len(telegram_fake.calls_of("setWebhook")) == 1


async def test_health_shows_the_webhooks_state_or_why_it_cannot(
    tg_admin: httpx.AsyncClient, telegram_fake: FakeTelegram
) -> None:
    channel_id = (await connect(tg_admin, await new_line(tg_admin))).json()["id"]
    telegram_fake.pending_update_count = 3
    telegram_fake.last_error_message = "Connection timed out"

    healthy = (await tg_admin.get(f"/v1/channels/{channel_id}")).json()
    telegram_fake.fail_next("getWebhookInfo", 502)
    unreachable = await tg_admin.get(f"/v1/channels/{channel_id}")

    assert healthy["health"]["pending_update_count"] == 3
    assert healthy["health"]["last_error_message"] == "Connection timed out"
    assert healthy["health"]["url"] == f"{PUBLIC_URL}/v1/channels/{channel_id}/telegram"
    assert unreachable.status_code == 200, unreachable.text
    assert unreachable.json()["health"] is None
    assert "502" in unreachable.json()["health_error"]
    assert TOKEN not in unreachable.text


async def test_other_channel_types_read_without_health(tg_admin: httpx.AsyncClient) -> None:
    line_id = await new_line(tg_admin)
    created = await tg_admin.post(f"/v1/lines/{line_id}/channels", json={"type": "api"})

    read = await tg_admin.get(f"/v1/channels/{created.json()['id']}")

    assert read.status_code == 200, read.text
    assert read.json()["type"] == "api"
    assert read.json()["health"] is None and read.json()["health_error"] is None
    assert "secret" not in read.json()
    assert (await tg_admin.get("/v1/channels/999999")).status_code == 404


async def test_delete_removes_the_webhook_and_a_failure_there_still_deletes(
    tg_admin: httpx.AsyncClient, telegram_fake: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    first = (await connect(tg_admin, await new_line(tg_admin))).json()["id"]

    deleted = await tg_admin.delete(f"/v1/channels/{first}")

    assert deleted.status_code == 204, deleted.text
    assert len(telegram_fake.calls_of("deleteWebhook")) == 1 and telegram_fake.webhook is None
    second = (await connect(tg_admin, await new_line(tg_admin))).json()["id"]
    telegram_fake.fail_next("deleteWebhook", 500)
    with caplog.at_level(logging.DEBUG):
        failed = await tg_admin.delete(f"/v1/channels/{second}")
    assert failed.status_code == 204, failed.text
    assert (await tg_admin.get(f"/v1/channels/{second}")).status_code == 404
    assert any("unregistering it failed" in r.getMessage() for r in caplog.records)
    assert TOKEN.split(":")[1] not in caplog.text


async def test_the_webhook_refuses_a_wrong_secret_and_a_malformed_body(
    tg_app: FastAPI, tg_admin: httpx.AsyncClient, telegram_fake: FakeTelegram
) -> None:
    channel_id = (await connect(tg_admin, await new_line(tg_admin))).json()["id"]
    update = recorded_update("private_text")
    async with client_for(tg_app, None) as telegram:
        wrong = await telegram_fake.deliver(update, http=telegram, secret="not-the-secret")
        assert telegram_fake.webhook is not None
        telegram_fake.webhook.secret_token, secret = None, telegram_fake.webhook.secret_token
        missing = await telegram_fake.deliver(update, http=telegram)
        malformed = await telegram.post(
            f"/v1/channels/{channel_id}/telegram",
            json={"message": {"text": "no update id"}},
            headers={"X-Telegram-Bot-Api-Secret-Token": secret or ""},
        )

    problem(wrong, 401)
    problem(missing, 401)
    assert problem(malformed, 422)["errors"][0]["field"] == "update_id"
    async with tg_app.state.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 0
        assert await session.scalar(select(func.count()).select_from(Chat)) == 0


async def test_group_messages_and_unknown_edits_are_200_and_store_nothing(
    tg_app: FastAPI, tg_admin: httpx.AsyncClient, telegram_fake: FakeTelegram
) -> None:
    await connect(tg_admin, await new_line(tg_admin))
    async with client_for(tg_app, None) as telegram:
        answers = [
            await telegram_fake.deliver(recorded_update(name), http=telegram)
            for name in ("group_message", "edited_message", "sticker")
        ]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert {a.json()["outcome"] for a in answers} == {"ignored"}
    assert all("method" not in a.json() for a in answers)
    async with tg_app.state.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 0


async def test_a_photo_and_a_document_are_kept_as_references_and_served_through_the_api(
    tg_app: FastAPI, tg_admin: httpx.AsyncClient, telegram_fake: FakeTelegram
) -> None:
    await connect(tg_admin, await new_line(tg_admin))
    photo = recorded_update("photo_caption")
    largest = photo["message"]["photo"][-1]["file_id"]
    telegram_fake.add_file(largest, b"\x89PNG box photo", "photos/file_7.jpg")
    document = recorded_update("document")
    telegram_fake.add_file(document["message"]["document"]["file_id"], b"%PDF-1.7 invoice")
    async with client_for(tg_app, None) as telegram:
        filed = [await telegram_fake.deliver(u, http=telegram) for u in (photo, document)]
    dialog_id = filed[0].json()["dialog_id"]

    listed = (await tg_admin.get(f"/v1/dialogs/{dialog_id}/messages")).json()["items"]
    by_client = [m for m in listed if m["author"] == "client"]
    assert [m["text"] for m in by_client] == ["Вот так пришла коробка", "[document]"]
    shown = [m["attachments"] for m in by_client]
    assert shown[0] == [
        {
            "kind": "photo",
            "ref": largest,
            "name": None,
            "mime_type": None,
            "url": f"/v1/messages/{by_client[0]['id']}/attachments/0",
        }
    ]
    assert (shown[1][0]["kind"], shown[1][0]["name"]) == ("document", "invoice-4412.pdf")
    got_photo = await tg_admin.get(shown[0][0]["url"])
    got_document = await tg_admin.get(shown[1][0]["url"])

    assert (got_photo.status_code, got_photo.content) == (200, b"\x89PNG box photo")
    assert got_photo.headers["x-content-type-options"] == "nosniff"
    assert got_photo.headers["content-disposition"].startswith("attachment;")
    assert got_document.content == b"%PDF-1.7 invoice"
    assert got_document.headers["content-type"] == "application/pdf"
    assert "invoice-4412.pdf" in got_document.headers["content-disposition"]
    assert [c.method for c in telegram_fake.calls[-4:]] == ["getFile", "file"] * 2
    assert TOKEN not in got_photo.text + got_document.text


async def test_an_attachment_telegram_will_not_give_is_a_502_and_a_wrong_index_a_404(
    tg_app: FastAPI, tg_admin: httpx.AsyncClient, telegram_fake: FakeTelegram
) -> None:
    await connect(tg_admin, await new_line(tg_admin))
    async with client_for(tg_app, None) as telegram:
        filed = await telegram_fake.deliver(recorded_update("voice"), http=telegram)
    message_id = filed.json()["message_id"]

    unknown = await tg_admin.get(f"/v1/messages/{message_id}/attachments/0")
    telegram_fake.fail_next("getFile", 502)
    down = await tg_admin.get(f"/v1/messages/{message_id}/attachments/0")
    beyond = await tg_admin.get(f"/v1/messages/{message_id}/attachments/1")

    assert "invalid file_id" in problem(unknown, 502)["detail"]
    assert TOKEN.split(":")[1] not in unknown.text
    problem(down, 503)
    assert down.headers["retry-after"]
    assert problem(beyond, 404)["detail"] == f"message {message_id} has no attachment 1"
