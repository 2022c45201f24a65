"""Ratings and consents as API clients see them: the client's buttons, a supervisor's mark,
and the consents an agreement collected."""

import asyncio
from collections.abc import Callable
from typing import Any

from tests.integration.conftest import System
from tests.integration.test_dialog_reads_and_actions import accepted, signed_in

PROBLEM = "application/problem+json"


async def eventually(system: System, url: str, check: Callable[[Any], bool]) -> Any:
    """GET ``url`` until its JSON passes ``check``."""
    deadline = asyncio.get_running_loop().time() + 15
    while not check(found := (await system.admin.get(url)).json()):
        assert asyncio.get_running_loop().time() < deadline, f"never: {found}"
        await asyncio.sleep(0.05)
    return found


async def rate(system: System, dialog_id: int, secret: str, value: str) -> Any:
    return await system.admin.post(
        f"/v1/dialogs/{dialog_id}/rating",
        json={"value": value},
        headers={"Authorization": f"Bearer {secret}"},
    )


async def test_the_client_rates_a_closing_dialog_once(system: System):
    ann = await system.operator("Ann")
    _, channel, secret = await system.line([ann])
    dialog_id = await accepted(system, channel, secret, "c-1", ann)
    early = await rate(system, dialog_id, secret, "like")
    assert early.status_code == 409
    assert early.json()["detail"] == f"dialog {dialog_id} does not wait for a rating"

    closing = await system.admin.post(f"/v1/dialogs/{dialog_id}/close")
    assert closing.json()["status"] == "closing"  # rating_wait: 600 s by default
    assert (await rate(system, dialog_id, "wrong", "like")).status_code == 401
    bad = await rate(system, dialog_id, secret, "great")
    assert bad.status_code == 422
    assert [e["field"] for e in bad.json()["errors"]] == ["value"]

    liked = await rate(system, dialog_id, secret, "like")
    assert liked.status_code == 200, liked.text
    assert (liked.json()["status"], liked.json()["rating"]["client"]) == ("closing", "like")
    again = await rate(system, dialog_id, secret, "dislike")
    assert again.status_code == 409
    assert again.headers["content-type"] == PROBLEM
    listed = (await system.admin.get("/v1/dialogs")).json()["items"]
    assert [(d["id"], d["rating"]["client"]) for d in listed] == [(dialog_id, "like")]


async def test_a_rating_after_the_close_is_recorded_on_that_dialog(system: System):
    ann = await system.operator("Ann")
    _, channel, secret = await system.line([ann], {"rating_wait": 0})
    dialog_id = await accepted(system, channel, secret, "c-1", ann)
    closed = await system.admin.post(f"/v1/dialogs/{dialog_id}/close")
    assert closed.json()["status"] == "closed"

    disliked = await rate(system, dialog_id, secret, "dislike")

    assert disliked.status_code == 200, disliked.text
    assert (disliked.json()["status"], disliked.json()["rating"]["client"]) == (
        "closed",
        "dislike",
    )
    again = await rate(system, dialog_id, secret, "like")
    assert (again.status_code, again.json()["detail"]) == (
        409,
        f"dialog {dialog_id} is already rated",
    )
    messages = (await system.admin.get(f"/v1/dialogs/{dialog_id}/messages")).json()["items"]
    assert messages[-1]["text"] == "Thank you. We will try to do better."
    assert [d["id"] for d in (await system.admin.get("/v1/dialogs")).json()["items"]] == [dialog_id]


async def test_a_supervisor_rates_any_dialog_1_to_5(system: System):
    ann = await system.operator("Ann")
    _, channel, secret = await system.line([ann])
    dialog_id = await accepted(system, channel, secret, "c-1", ann)

    async with signed_in(system, "supervisor") as supervisor:
        bad = await supervisor.post(
            f"/v1/dialogs/{dialog_id}/supervisor-rating", json={"rating": 6}
        )
        assert bad.status_code == 422
        assert [e["field"] for e in bad.json()["errors"]] == ["rating"]
        rated = await supervisor.post(
            f"/v1/dialogs/{dialog_id}/supervisor-rating",
            json={"rating": 4, "comment": "Polite, a bit slow."},
        )
    assert rated.status_code == 200, rated.text
    async with signed_in(system, "operator", ann) as as_ann:
        refused = await as_ann.post(
            f"/v1/dialogs/{dialog_id}/supervisor-rating", json={"rating": 5}
        )
    assert refused.status_code == 403
    listed = (await system.admin.get("/v1/dialogs")).json()["items"]
    assert listed[0]["rating"] == {
        "client": None,
        "supervisor": 4,
        "comment": "Polite, a bit slow.",
    }


async def test_consents_are_listed_with_the_agreement_version(system: System):
    agreement = (
        await system.admin.post("/v1/agreements", json={"name": "Data", "text": "Version one."})
    ).json()
    await system.admin.patch(f"/v1/agreements/{agreement['id']}", json={"text": "Version two."})
    line_id, channel, secret = await system.line(
        [], {"agreement": {"required": True, "agreement_id": agreement["id"]}}
    )
    first = (await system.client_writes(channel, secret, "c-1", "m-1", "Hi")).json()
    messages_url = f"/v1/dialogs/{first['dialog_id']}/messages"
    await eventually(
        system, messages_url, lambda ms: "Version two." in [m["text"] for m in ms["items"]]
    )
    second = (await system.client_writes(channel, secret, "c-1", "m-2", "OK, I agree")).json()

    consents = await eventually(system, f"/v1/agreements/{agreement['id']}/consents", bool)
    assert [
        (c["chat_id"], c["version"], c["channel_type"], c["dialog_id"], c["message_id"])
        for c in consents
    ] == [(first["chat_id"], 2, "api", first["dialog_id"], second["message_id"])]
    assert line_id
