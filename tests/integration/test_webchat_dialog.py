"""A web chat visitor's whole dialog through the running system: they write, the operator
answers (shown under the line's display rules), the dialog closes, and the visitor rates it
with the like button, proven by their visitor token alone."""

from typing import Any

from tests.api.test_webchat import Widget
from tests.conftest import client_for
from tests.integration.conftest import System


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def test_a_visitor_chats_and_rates_with_the_like_button(system: System):
    ann = await system.operator("Ann")
    settings = {"name": "Shop", "queue": {"members": [{"type": "operator", "id": ann}]}}
    line = ok(await system.admin.post("/v1/lines", json=settings), 201)
    created = await system.admin.post(
        f"/v1/lines/{line['id']}/channels",
        json={"type": "webchat", "config": {"allowed_origins": ["https://shop.example"]}},
    )
    widget, stranger = Widget(system.app, ok(created, 201)), Widget(system.app, ok(created, 201))
    await widget.open()
    await stranger.open()

    dialog_id = ok(await widget.write("Where is my order?", "c-1"), 202)["dialog_id"]
    await system.dialog_when(dialog_id, lambda d: d["offered_to"] == [ann])
    act = {"operator_id": ann}
    ok(
        await system.admin.post(
            f"/v1/dialogs/{dialog_id}/messages", json={"text": "On its way!", **act}
        )
    )
    ok(await system.admin.post(f"/v1/dialogs/{dialog_id}/close", json=act))
    await system.dialog_when(dialog_id, lambda d: d["status"] == "closing")
    chat = ok(await widget.read())

    rate = f"/v1/dialogs/{dialog_id}/rating"
    async with client_for(system.app, stranger.token) as as_stranger:
        by_stranger = await as_stranger.post(rate, json={"value": "like"})
    async with client_for(system.app, widget.token) as as_visitor:
        liked = await as_visitor.post(rate, json={"value": "like"})

    by_author = {m["author"]: m for m in chat["items"]}
    assert by_author["operator"]["text"] == "On its way!"
    assert by_author["operator"]["sender"]["name"] == "Ann"
    assert any(m["rating_request"] for m in chat["items"] if m["author"] == "system")
    assert by_stranger.status_code == 401  # another visitor's token proves nothing here
    assert ok(liked)["id"] == dialog_id
    rated = await system.dialog_when(dialog_id, lambda d: d["rating"]["client"] == "like")
    assert rated["rating"]["client"] == "like"
    assert ok(await widget.read())["dialog"]["rating"] == "like"
