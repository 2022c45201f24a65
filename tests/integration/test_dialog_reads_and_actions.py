"""Reading dialogs (list, one dialog, an operator's console) and the actions beyond accept,
reply and close, as an API client sees them."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from activities.auto_replies import AutoReplyActivities
from tests.conftest import ADMIN_KEY, client_for
from tests.integration.conftest import System
from workflows.models import AutoText

PROBLEM = "application/problem+json"


@asynccontextmanager
async def signed_in(
    system: System, role: str, operator_id: int | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client with a fresh key of this role (bound to ``operator_id`` for operators)."""
    body: dict[str, Any] = {"role": role}
    if operator_id is not None:
        body["operator_id"] = operator_id
    issued = await system.admin.post("/v1/api-keys", json=body)
    assert issued.status_code == 201, issued.text
    async with client_for(system.app, issued.json()["key"]) as client:
        yield client


async def new_dialog(system: System, channel: int, secret: str, chat: str) -> int:
    written = await system.client_writes(channel, secret, chat, f"{chat}-m1", "Hello")
    assert written.status_code == 202, written.text
    dialog_id: int = written.json()["dialog_id"]
    return dialog_id


async def offered(system: System, channel: int, secret: str, chat: str, operator: int) -> int:
    """A new dialog, once it is offered to ``operator``."""
    dialog_id = await new_dialog(system, channel, secret, chat)
    await system.dialog_when(dialog_id, lambda d: d["offered_to"] == [operator])
    return dialog_id


async def accepted(system: System, channel: int, secret: str, chat: str, operator: int) -> int:
    """A new dialog, accepted by ``operator`` (an admin acting for them)."""
    dialog_id = await offered(system, channel, secret, chat, operator)
    answer = await system.admin.post(
        f"/v1/dialogs/{dialog_id}/accept", json={"operator_id": operator}
    )
    assert answer.status_code == 200, answer.text
    return dialog_id


async def listed(client: httpx.AsyncClient, query: str = "") -> list[int]:
    answer = await client.get(f"/v1/dialogs?{query}")
    assert answer.status_code == 200, answer.text
    return [item["id"] for item in answer.json()["items"]]


async def test_the_list_is_newest_first_and_filters_by_line_status_and_operator(system: System):
    ann, bob = await system.operator("Ann"), await system.operator("Bob")
    line_a, channel_a, secret_a = await system.line([ann])
    line_b, channel_b, secret_b = await system.line([bob])
    first = await accepted(system, channel_a, secret_a, "a-1", ann)
    second = await offered(system, channel_a, secret_a, "a-2", ann)
    third = await offered(system, channel_b, secret_b, "b-1", bob)

    assert await listed(system.admin) == [third, second, first]
    assert await listed(system.admin, f"line_id={line_a}") == [second, first]
    assert await listed(system.admin, f"line_id={line_b}") == [third]
    assert await listed(system.admin, "status=accepted") == [first]
    assert await listed(system.admin, "status=queued") == [third, second]
    assert await listed(system.admin, f"operator_id={ann}") == [first]
    assert await listed(system.admin, f"line_id={line_a}&status=queued") == [second]
    assert await listed(system.admin, "status=closed") == []


async def test_pages_of_two_list_every_dialog_exactly_once(system: System):
    _, channel, secret = await system.line([])
    created = [await new_dialog(system, channel, secret, f"p-{i}") for i in range(5)]

    pages: list[list[int]] = []
    params: dict[str, Any] = {"limit": 2}
    while len(pages) < 5:
        answer = await system.admin.get("/v1/dialogs", params=params)
        assert answer.status_code == 200, answer.text
        pages.append([item["id"] for item in answer.json()["items"]])
        params["cursor"] = answer.json()["next_cursor"]
        if params["cursor"] is None:
            break
    newest_first = created[::-1]
    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:]]
    assert params["cursor"] is None


async def test_a_cursor_the_api_never_returned_is_422_naming_cursor(system: System):
    bad = ("abc", "-1", "1.5", "²", "9" * 30)
    # Server errors come back as 500 answers here, so every bad cursor is reported at once.
    transport = httpx.ASGITransport(app=system.app, raise_app_exceptions=False)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://openlines.test", headers=headers
    ) as admin:
        answers = {
            cursor: await admin.get("/v1/dialogs", params={"cursor": cursor}) for cursor in bad
        }
    assert {cursor: a.status_code for cursor, a in answers.items()} == dict.fromkeys(bad, 422)
    for answer in answers.values():
        assert answer.headers["content-type"] == PROBLEM
        assert [e["field"] for e in answer.json()["errors"]] == ["query.cursor"]
    # Digits past every id: the newest-first list goes on from beyond the newest row.
    past = await system.admin.get("/v1/dialogs", params={"cursor": str(2**31)})
    assert past.status_code == 200


async def test_an_operator_sees_only_dialogs_offered_to_them_or_theirs(system: System):
    ann, bob = await system.operator("Ann"), await system.operator("Bob")
    _, channel_a, secret_a = await system.line([ann])
    _, channel_b, secret_b = await system.line([bob])
    anns_own = await accepted(system, channel_a, secret_a, "a-1", ann)
    offered_to_ann = await offered(system, channel_a, secret_a, "a-2", ann)
    bobs = await offered(system, channel_b, secret_b, "b-1", bob)

    async with signed_in(system, "operator", ann) as as_ann:
        assert await listed(as_ann) == [offered_to_ann, anns_own]
        assert (await as_ann.get(f"/v1/dialogs/{offered_to_ann}")).status_code == 200
        others = await as_ann.get(f"/v1/dialogs/{bobs}")
        assert others.status_code == 403
        assert others.headers["content-type"] == PROBLEM
        assert (await as_ann.get(f"/v1/dialogs/{bobs}/messages")).status_code == 403
    async with signed_in(system, "operator", bob) as as_bob:
        assert await listed(as_bob) == [bobs]


async def test_one_dialog_shows_its_handover_deadline_only_while_offered(system: System):
    ann = await system.operator("Ann")
    _, channel, secret = await system.line([ann], handover_after=60)
    dialog_id = await offered(system, channel, secret, "c-1", ann)

    dialog = (await system.admin.get(f"/v1/dialogs/{dialog_id}")).json()
    handover = datetime.fromisoformat(dialog["deadlines"]["handover"])
    assert datetime.now(UTC) < handover <= datetime.now(UTC) + timedelta(seconds=61)
    assert dialog["workflow"]["id"] == f"chat-{dialog['chat_id']}"
    assert f"chat-{dialog['chat_id']}" in dialog["workflow"]["ui_url"]

    async with signed_in(system, "operator", ann) as as_ann:
        assert (await as_ann.post(f"/v1/dialogs/{dialog_id}/accept")).status_code == 200
        after = await as_ann.get(f"/v1/dialogs/{dialog_id}")
    assert after.status_code == 200, after.text
    assert (after.json()["status"], after.json()["operator_id"]) == ("accepted", ann)
    assert "handover" not in after.json()["deadlines"]

    missing = await system.admin.get(f"/v1/dialogs/{2**31 - 1}")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM


async def test_an_operators_console_lists_their_open_dialogs_only(system: System):
    ann, bob = await system.operator("Ann"), await system.operator("Bob")
    _, channel, secret = await system.line([ann])
    taken = await accepted(system, channel, secret, "c-1", ann)
    waiting = await offered(system, channel, secret, "c-2", ann)
    done = await accepted(system, channel, secret, "c-3", ann)
    closed = await system.admin.post(f"/v1/dialogs/{done}/close")
    assert closed.status_code == 200, closed.text

    async with signed_in(system, "operator", ann) as as_ann:
        console = await as_ann.get(f"/v1/operators/{ann}/dialogs")
        someone_elses = await as_ann.get(f"/v1/operators/{bob}/dialogs")
    assert console.status_code == 200, console.text
    assert [(d["id"], d["status"]) for d in console.json()] == [
        (taken, "accepted"),
        (waiting, "queued"),
        (done, "closing"),  # waits for the client's rating; a client message reopens it
    ]
    assert someone_elses.status_code == 403
    assert someone_elses.headers["content-type"] == PROBLEM


async def test_a_transfer_to_an_operator_makes_them_the_owner(system: System):
    ann, bob = await system.operator("Ann"), await system.operator("Bob")
    line_id, channel, secret = await system.line([ann])
    dialog_id = await accepted(system, channel, secret, "c-1", ann)

    async with signed_in(system, "operator", ann) as as_ann:
        for body in ({"operator_id": bob, "line_id": line_id}, {}):
            refused = await as_ann.post(f"/v1/dialogs/{dialog_id}/transfer", json=body)
            assert refused.status_code == 422, (body, refused.text)
            assert refused.headers["content-type"] == PROBLEM
        moved = await as_ann.post(f"/v1/dialogs/{dialog_id}/transfer", json={"operator_id": bob})
        assert moved.status_code == 200, moved.text
        assert (moved.json()["status"], moved.json()["operator_id"]) == ("accepted", bob)
        assert (await as_ann.get(f"/v1/dialogs/{dialog_id}")).status_code == 403
    async with signed_in(system, "operator", bob) as as_bob:
        assert await listed(as_bob) == [dialog_id]
        reply = await as_bob.post(f"/v1/dialogs/{dialog_id}/messages", json={"text": "Bob here"})
        assert reply.status_code == 200, reply.text


async def test_a_transfer_to_a_line_offers_the_dialog_to_its_member(system: System):
    ann, bob = await system.operator("Ann"), await system.operator("Bob")
    _, channel, secret = await system.line([ann])
    other_line, _, _ = await system.line([bob])
    dialog_id = await accepted(system, channel, secret, "c-1", ann)

    async with signed_in(system, "operator", ann) as as_ann:
        moved = await as_ann.post(f"/v1/dialogs/{dialog_id}/transfer", json={"line_id": other_line})
    assert moved.status_code == 200, moved.text
    dialog = await system.dialog_when(dialog_id, lambda d: d["offered_to"] == [bob])
    assert (dialog["line_id"], dialog["status"]) == (other_line, "queued")
    assert await listed(system.admin, f"line_id={other_line}") == [dialog_id]
    async with signed_in(system, "operator", bob) as as_bob:
        assert (await as_bob.post(f"/v1/dialogs/{dialog_id}/accept")).status_code == 200
    # The action's answer is the dialog as the transfer left it: in the new line.
    assert (moved.json()["line_id"], moved.json()["operator_id"]) == (other_line, None)


async def test_a_supervisor_intercepts_a_dialog_for_an_operator(system: System):
    ann, bob = await system.operator("Ann"), await system.operator("Bob")
    _, channel, secret = await system.line([ann])
    dialog_id = await offered(system, channel, secret, "c-1", ann)

    async with signed_in(system, "operator", ann) as as_ann:
        refused = await as_ann.post(f"/v1/dialogs/{dialog_id}/intercept", json={"operator_id": ann})
    assert refused.status_code == 403
    assert refused.headers["content-type"] == PROBLEM
    async with signed_in(system, "supervisor") as supervisor:
        taken = await supervisor.post(
            f"/v1/dialogs/{dialog_id}/intercept", json={"operator_id": bob}
        )
    assert taken.status_code == 200, taken.text
    assert (taken.json()["status"], taken.json()["operator_id"]) == ("accepted", bob)
    dialog = (await system.admin.get(f"/v1/dialogs/{dialog_id}")).json()
    assert (dialog["operator_id"], dialog["offered_to"]) == (bob, [])


async def test_spam_by_the_owner_ends_the_dialog_as_spam(system: System):
    ann = await system.operator("Ann")
    _, channel, secret = await system.line([ann])
    dialog_id = await accepted(system, channel, secret, "c-1", ann)

    async with signed_in(system, "operator", ann) as as_ann:
        marked = await as_ann.post(f"/v1/dialogs/{dialog_id}/spam")
        assert marked.status_code == 200, marked.text
        assert marked.json()["status"] == "spam"
        again = await as_ann.post(f"/v1/dialogs/{dialog_id}/spam")
        assert again.status_code == 409
    dialog = await system.dialog_when(dialog_id, lambda d: d["closed_at"] is not None)
    assert (dialog["status"], dialog["deadlines"]) == ("spam", {})
    assert await listed(system.admin, "status=spam") == [dialog_id]


async def test_the_owner_pins_and_unpins_a_dialog(system: System):
    ann = await system.operator("Ann")
    _, channel, secret = await system.line([ann])
    dialog_id = await accepted(system, channel, secret, "c-1", ann)

    async with signed_in(system, "operator", ann) as as_ann:
        pinned = await as_ann.post(f"/v1/dialogs/{dialog_id}/pin")
        assert (pinned.status_code, pinned.json()["pinned"]) == (200, True)
        assert (await as_ann.get(f"/v1/dialogs/{dialog_id}")).json()["pinned"] is True
        assert (await as_ann.get("/v1/dialogs")).json()["items"][0]["pinned"] is True

        unpinned = await as_ann.post(f"/v1/dialogs/{dialog_id}/unpin")
        assert (unpinned.status_code, unpinned.json()["pinned"]) == (200, False)
        assert (await as_ann.get(f"/v1/dialogs/{dialog_id}")).json()["pinned"] is False


async def test_a_reply_on_an_inactive_line_is_409_and_not_stored(system: System):
    ann = await system.operator("Ann")
    line_id, channel, secret = await system.line([ann])
    dialog_id = await accepted(system, channel, secret, "c-1", ann)
    deactivated = await system.admin.patch(f"/v1/lines/{line_id}", json={"active": False})
    assert deactivated.status_code == 200, deactivated.text
    assert deactivated.json()["active"] is False

    async with signed_in(system, "operator", ann) as as_ann:
        refused = await as_ann.post(f"/v1/dialogs/{dialog_id}/messages", json={"text": "Hi"})
        assert refused.status_code == 409, refused.text
        assert refused.headers["content-type"] == PROBLEM
        assert "inactive" in refused.json()["detail"]
        messages = (await as_ann.get(f"/v1/dialogs/{dialog_id}/messages")).json()["items"]
    assert [(m["author"], m["text"]) for m in messages if m["author"] != "system"] == [
        ("client", "Hello")
    ]


async def test_a_refused_reply_on_an_inactive_line_does_not_take_the_dialog(system: System):
    ann = await system.operator("Ann")
    line_id, channel, secret = await system.line([ann])
    dialog_id = await offered(system, channel, secret, "c-1", ann)
    deactivated = await system.admin.patch(f"/v1/lines/{line_id}", json={"active": False})
    assert deactivated.status_code == 200, deactivated.text

    async with signed_in(system, "operator", ann) as as_ann:
        refused = await as_ann.post(f"/v1/dialogs/{dialog_id}/messages", json={"text": "Hi"})
    assert refused.status_code == 409, refused.text
    dialog = (await system.admin.get(f"/v1/dialogs/{dialog_id}")).json()
    # A 409 changes nothing: the reply that was refused must not have accepted the dialog.
    assert dialog["operator_id"] is None and dialog["offered_to"] == [ann], dialog


async def test_skip_moves_the_offer_to_the_next_operator_in_strict_order(system: System):
    ann, bob = await system.operator("Ann"), await system.operator("Bob")
    _, channel, secret = await system.line([ann, bob], distribution="strictly")
    dialog_id = await offered(system, channel, secret, "c-1", ann)

    async with signed_in(system, "operator", ann) as as_ann:
        skipped = await as_ann.post(f"/v1/dialogs/{dialog_id}/skip")
    assert skipped.status_code == 200, skipped.text
    assert (skipped.json()["status"], skipped.json()["offered_to"]) == ("queued", [bob])
    dialog = (await system.admin.get(f"/v1/dialogs/{dialog_id}")).json()
    assert dialog["offered_to"] == [bob] and "handover" in dialog["deadlines"]
    async with signed_in(system, "operator", bob) as as_bob:
        taken = await as_bob.post(f"/v1/dialogs/{dialog_id}/accept")
    assert (taken.status_code, taken.json()["operator_id"]) == (200, bob)


async def test_unanswered_dialogs_are_marked_in_reads_and_listed_by_the_filter(system: System):
    ann = await system.operator("Ann")
    _, channel, secret = await system.line([ann], handover_after=3600)
    waiting = await offered(system, channel, secret, "u-1", ann)
    taken = await accepted(system, channel, secret, "u-2", ann)
    assert await listed(system.admin, "unanswered=true") == []
    marks = AutoReplyActivities(system.app.state.sessions)

    # What the dialog's workflow does when no_answer.after is over (1 min at least; the
    # timers themselves are tested on the time-skipping server).
    for dialog_id in (waiting, taken):
        await marks.send_text(AutoText(dialog_id=dialog_id, kind="no_answer", at=datetime.now(UTC)))

    assert await listed(system.admin, "unanswered=true") == [waiting]  # the taken one is not
    assert await listed(system.admin, "unanswered=false") == [taken]
    assert (await system.admin.get(f"/v1/dialogs/{waiting}")).json()["unanswered"] is True
    accept = await system.admin.post(f"/v1/dialogs/{waiting}/accept", json={"operator_id": ann})
    assert (accept.status_code, accept.json()["unanswered"]) == (200, False)
    assert await listed(system.admin, "unanswered=true") == []
    bad = await system.admin.get("/v1/dialogs", params={"unanswered": "maybe"})
    assert bad.status_code == 422
    assert [e["field"] for e in bad.json()["errors"]] == ["query.unanswered"]
