"""A dialog's messages come a page at a time, oldest first, as the other lists do."""

from fastapi import FastAPI
from httpx import AsyncClient

from tests.api.test_channel_move import add_channel, assert_problem, create_line, ok, write


async def test_messages_are_paged_oldest_first(app: FastAPI, admin: AsyncClient) -> None:
    channel = await add_channel(admin, await create_line(admin))
    filed = [await write(app, channel, "pages", f"m-{n}") for n in range(5)]
    dialog_id = filed[0]["dialog_id"]
    url = f"/v1/dialogs/{dialog_id}/messages"

    pages, cursor = [], None
    while True:
        page = ok(
            await admin.get(url, params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        )
        pages.append([m["id"] for m in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    ids = [f["message_id"] for f in filed]
    assert pages == [ids[0:2], ids[2:4], ids[4:]]
    assert [m["id"] for m in ok(await admin.get(url))["items"]] == ids  # 100 by default
    bad = assert_problem(await admin.get(url, params={"cursor": "x1"}), 422)
    assert [e["field"] for e in bad["errors"]] == ["query.cursor"]
    too_many = assert_problem(await admin.get(url, params={"limit": 501}), 422)
    assert [e["field"] for e in too_many["errors"]] == ["query.limit"]
