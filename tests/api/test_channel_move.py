"""Moving a channel to another line: ``PATCH /v1/channels/{id}`` with ``{"line_id": ...}``.

A line holds one channel of each type. The channel's open dialogs stay on the old line until
they close; the next dialog of its chats, and every new chat, starts on the new line. Client
messages go through the inbound API; a dialog is closed as its workflow would write it.
"""

from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response

from core.models import Chat, Dialog
from tests.conftest import client_for

PROBLEM_JSON = "application/problem+json"


def ok(response: Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def assert_problem(response: Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    return problem


async def create_line(admin: AsyncClient) -> int:
    line_id: int = ok(await admin.post("/v1/lines", json={}), 201)["id"]
    return line_id


async def add_channel(admin: AsyncClient, line_id: int) -> dict[str, Any]:
    channel: dict[str, Any] = ok(
        await admin.post(f"/v1/lines/{line_id}/channels", json={"type": "api"}), 201
    )
    return channel


async def move(admin: AsyncClient, channel_id: int, line_id: Any) -> Response:
    return await admin.patch(f"/v1/channels/{channel_id}", json={"line_id": line_id})


async def write(app: FastAPI, channel: dict[str, Any], client: str, message: str) -> dict[str, Any]:
    """The client ``client`` sends a message through the channel's inbound API."""
    body = {"chat": {"external_id": client}, "message": {"external_id": message, "text": "Hi"}}
    async with client_for(app, channel["secret"]) as as_channel:
        filed: dict[str, Any] = ok(
            await as_channel.post(f"/v1/channels/{channel['id']}/messages", json=body), 202
        )
    return filed


async def dialog_lines(admin: AsyncClient) -> dict[int, int]:
    """Every dialog's line, by dialog id, as the dialog list shows them."""
    page = ok(await admin.get("/v1/dialogs", params={"limit": 200}))
    return {item["id"]: item["line_id"] for item in page["items"]}


async def close_dialog(app: FastAPI, dialog_id: int) -> None:
    """Close the dialog's row as its workflow does once the dialog has ended."""
    async with app.state.sessions() as session:
        dialog = await session.get(Dialog, dialog_id)
        assert dialog is not None
        dialog.status, dialog.close_reason = "closed", "operator"
        dialog.closed_at = datetime.now(UTC)
        await session.commit()


async def channel_ids_of(admin: AsyncClient, line_id: int) -> list[int]:
    return [channel["id"] for channel in ok(await admin.get(f"/v1/lines/{line_id}/channels"))]


# --- moving -------------------------------------------------------------------------------


async def test_a_moved_channel_belongs_to_its_new_line(admin):
    old_line, new_line = await create_line(admin), await create_line(admin)
    channel = await add_channel(admin, old_line)

    moved = ok(await move(admin, channel["id"], new_line))

    assert (moved["id"], moved["line_id"], moved["type"]) == (channel["id"], new_line, "api")
    assert "secret" not in moved
    assert await channel_ids_of(admin, new_line) == [channel["id"]]
    assert await channel_ids_of(admin, old_line) == []
    # The old line may connect a channel of that type again.
    assert (await admin.post(f"/v1/lines/{old_line}/channels", json={"type": "api"})).is_success


async def test_the_next_dialog_of_a_chat_starts_on_the_new_line(app, admin):
    old_line, new_line = await create_line(admin), await create_line(admin)
    channel = await add_channel(admin, old_line)
    first = await write(app, channel, "tg-ann", "m-1")
    await close_dialog(app, first["dialog_id"])

    ok(await move(admin, channel["id"], new_line))
    second = await write(app, channel, "tg-ann", "m-2")

    assert second["chat_id"] == first["chat_id"]  # the same client, a new session
    assert second["dialog_id"] != first["dialog_id"]
    lines = await dialog_lines(admin)
    assert lines[first["dialog_id"]] == old_line  # history stays where it happened
    assert lines[second["dialog_id"]] == new_line
    async with app.state.sessions() as session:  # the chat row follows its new dialog
        chat = await session.get(Chat, second["chat_id"])
    assert chat is not None and chat.line_id == new_line


async def test_an_open_dialog_stays_on_the_old_line_until_it_closes(app, admin):
    old_line, new_line = await create_line(admin), await create_line(admin)
    channel = await add_channel(admin, old_line)
    first = await write(app, channel, "tg-ann", "m-1")

    ok(await move(admin, channel["id"], new_line))
    follow_up = await write(app, channel, "tg-ann", "m-2")
    newcomer = await write(app, channel, "tg-bob", "m-1")

    assert follow_up["dialog_id"] == first["dialog_id"]
    lines = await dialog_lines(admin)
    assert lines[first["dialog_id"]] == old_line
    assert lines[newcomer["dialog_id"]] == new_line  # a new chat goes to the new line

    await close_dialog(app, first["dialog_id"])
    after_close = await write(app, channel, "tg-ann", "m-3")

    assert after_close["dialog_id"] not in (first["dialog_id"], newcomer["dialog_id"])
    assert (await dialog_lines(admin))[after_close["dialog_id"]] == new_line


async def test_moving_to_its_own_line_changes_nothing(app, admin):
    line_id = await create_line(admin)
    channel = await add_channel(admin, line_id)
    first = await write(app, channel, "tg-ann", "m-1")

    assert ok(await move(admin, channel["id"], line_id))["line_id"] == line_id

    assert await channel_ids_of(admin, line_id) == [channel["id"]]
    assert (await write(app, channel, "tg-ann", "m-2"))["dialog_id"] == first["dialog_id"]


async def test_a_channel_can_move_back_and_forth(app, admin):
    first_line, second_line = await create_line(admin), await create_line(admin)
    channel = await add_channel(admin, first_line)

    ok(await move(admin, channel["id"], second_line))
    ok(await move(admin, channel["id"], first_line))
    filed = await write(app, channel, "tg-ann", "m-1")

    assert (await dialog_lines(admin))[filed["dialog_id"]] == first_line


# --- refusals -----------------------------------------------------------------------------


async def test_a_line_with_a_channel_of_that_type_is_409_naming_it(app, admin):
    old_line, busy_line = await create_line(admin), await create_line(admin)
    channel = await add_channel(admin, old_line)
    resident = await add_channel(admin, busy_line)

    problem = assert_problem(await move(admin, channel["id"], busy_line), 409)

    assert f"channel {resident['id']}" in problem["detail"]
    assert await channel_ids_of(admin, old_line) == [channel["id"]]
    assert await channel_ids_of(admin, busy_line) == [resident["id"]]
    filed = await write(app, channel, "tg-ann", "m-1")
    assert (await dialog_lines(admin))[filed["dialog_id"]] == old_line


async def test_a_deleted_channel_of_that_type_does_not_block_a_move(admin):
    old_line, new_line = await create_line(admin), await create_line(admin)
    channel = await add_channel(admin, old_line)
    gone = await add_channel(admin, new_line)
    assert (await admin.delete(f"/v1/channels/{gone['id']}")).status_code == 204

    assert ok(await move(admin, channel["id"], new_line))["line_id"] == new_line


@pytest.mark.parametrize("target", ["unknown", "deleted", "past-the-id-column"])
async def test_a_line_that_does_not_exist_is_404_naming_line_id(admin, target):
    line_id = await create_line(admin)
    channel = await add_channel(admin, line_id)
    missing = {"unknown": 99999, "past-the-id-column": 2**31 - 1}.get(target)
    if missing is None:
        missing = await create_line(admin)
        assert (await admin.delete(f"/v1/lines/{missing}")).status_code == 204

    problem = assert_problem(await move(admin, channel["id"], missing), 404)

    assert [error["field"] for error in problem["errors"]] == ["line_id"]
    assert await channel_ids_of(admin, line_id) == [channel["id"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "line_id"),
        ({"line_id": None}, "line_id"),
        ({"line_id": "two"}, "line_id"),
        ({"line_id": 0}, "line_id"),
        ({"line_id": 2**31}, "line_id"),
        ({"line_id": 1, "type": "webchat"}, "type"),
        ({"line_id": 1, "secret": "mine"}, "secret"),
    ],
    ids=["empty", "null", "string", "zero", "too-big", "type", "secret"],
)
async def test_a_bad_body_is_422_naming_the_field(admin, body, field):
    line_id = await create_line(admin)
    channel = await add_channel(admin, line_id)

    problem = assert_problem(await admin.patch(f"/v1/channels/{channel['id']}", json=body), 422)

    assert [error["field"] for error in problem["errors"]] == [field]
    assert await channel_ids_of(admin, line_id) == [channel["id"]]


async def test_an_unknown_or_deleted_channel_is_404(admin):
    line_id = await create_line(admin)
    channel = await add_channel(admin, line_id)
    assert (await admin.delete(f"/v1/channels/{channel['id']}")).status_code == 204

    assert_problem(await move(admin, channel["id"], line_id), 404)
    assert_problem(await move(admin, 99999, line_id), 404)
    assert_problem(await move(admin, 2**31, line_id), 404)


@pytest.mark.parametrize("role", ["supervisor", "operator", "bot"])
async def test_only_admins_move_channels(app, admin, role):
    old_line, new_line = await create_line(admin), await create_line(admin)
    channel = await add_channel(admin, old_line)
    binding: dict[str, int] = {}
    if role == "operator":
        operator = ok(await admin.post("/v1/operators", json={"name": "Ann"}), 201)
        binding = {"operator_id": operator["id"]}
    if role == "bot":
        binding = {"bot_id": ok(await admin.post("/v1/bots", json={"name": "Helper"}), 201)["id"]}
    key = ok(await admin.post("/v1/api-keys", json={"role": role, **binding}), 201)["key"]

    async with client_for(app, key) as caller:
        problem = assert_problem(await move(caller, channel["id"], new_line), 403)

    assert f"the {role} role" in problem["detail"]
    assert await channel_ids_of(admin, old_line) == [channel["id"]]


async def test_deleting_the_old_line_leaves_the_moved_channel_alone(app, admin):
    old_line, new_line = await create_line(admin), await create_line(admin)
    channel = await add_channel(admin, old_line)
    ok(await move(admin, channel["id"], new_line))

    assert (await admin.delete(f"/v1/lines/{old_line}")).status_code == 204

    assert await channel_ids_of(admin, new_line) == [channel["id"]]
    filed = await write(app, channel, "tg-ann", "m-1")
    assert (await dialog_lines(admin))[filed["dialog_id"]] == new_line
