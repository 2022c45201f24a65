"""Routes without an API key answer an unknown id exactly as they answer a wrong secret, so
nobody can learn which channels or dialogs exist; a deleted channel's secret proves nothing."""

from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient, Response

from api.channel_auth import DENIED
from tests.api.test_channel_move import add_channel, create_line, write
from tests.conftest import client_for

MESSAGE = {"chat": {"external_id": "p-1"}, "message": {"external_id": "m-1", "text": "Hi"}}


def refusal(response: Response) -> tuple[int, str, str]:
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return response.status_code, body["title"], body["detail"]


async def test_an_unknown_channel_is_answered_as_a_wrong_secret(
    app: FastAPI, admin: AsyncClient
) -> None:
    channel = await add_channel(admin, await create_line(admin))
    async with client_for(app, "not-the-secret") as stranger:
        for path, body in (
            ("messages", MESSAGE),
            ("receipts", {"message_ids": [1], "status": "read"}),
        ):
            known = await stranger.post(f"/v1/channels/{channel['id']}/{path}", json=body)
            unknown = await stranger.post(f"/v1/channels/999999/{path}", json=body)
            beyond = await stranger.post(f"/v1/channels/{2**40}/{path}", json=body)
            assert (
                refusal(known)
                == refusal(unknown)
                == refusal(beyond)
                == (
                    401,
                    "Unauthorized",
                    DENIED,
                )
            )
        telegram = [
            await stranger.post(f"/v1/channels/{i}/telegram", json={"update_id": 1})
            for i in (channel["id"], 999999)
        ]
    assert refusal(telegram[0]) == refusal(telegram[1])


async def test_an_unknown_dialog_is_answered_as_a_wrong_secret_when_rating(
    app: FastAPI, admin: AsyncClient
) -> None:
    channel = await add_channel(admin, await create_line(admin))
    dialog_id = (await write(app, channel, "p-2", "m-1"))["dialog_id"]
    async with client_for(app, "not-the-secret") as stranger:
        known = await stranger.post(f"/v1/dialogs/{dialog_id}/rating", json={"value": "like"})
        unknown = await stranger.post("/v1/dialogs/999999/rating", json={"value": "like"})
    assert refusal(known) == refusal(unknown) == (401, "Unauthorized", DENIED)


async def test_a_deleted_channels_secret_can_no_longer_rate_or_write(
    app: FastAPI, admin: AsyncClient
) -> None:
    channel = await add_channel(admin, await create_line(admin))
    dialog_id = (await write(app, channel, "p-3", "m-1"))["dialog_id"]
    assert (await admin.delete(f"/v1/channels/{channel['id']}")).status_code == 204
    async with client_for(app, channel["secret"]) as former:
        rated = await former.post(f"/v1/dialogs/{dialog_id}/rating", json={"value": "like"})
        wrote = await former.post(f"/v1/channels/{channel['id']}/messages", json=MESSAGE)
    assert refusal(rated) == refusal(wrote) == (401, "Unauthorized", DENIED)
