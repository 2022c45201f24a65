"""A dialog through the HTTP API: client message, offer, accept, reply, close."""

import asyncio

from sqlalchemy import func, select

from core.line_settings import LineSettings
from core.models import Dialog, Message, Outbox
from tests.conftest import ADMIN_KEY, client_for
from tests.integration.conftest import System, running_worker


async def operator_key(system: System, operator_id: int) -> str:
    response = await system.admin.post(
        "/v1/api-keys", json={"role": "operator", "operator_id": operator_id}
    )
    key: str = response.json()["key"]
    return key


async def test_a_client_message_is_offered_accepted_replied_closed_and_rated(system: System):
    ann = await system.operator("Ann")
    texts = LineSettings()  # the default texts
    _, channel, secret = await system.line([ann], {"rating_wait": 0})
    written = await system.client_writes(channel, secret, "tg-1", "m-1", "Hello")
    assert written.status_code == 202, written.text
    filed = written.json()
    assert filed["duplicate"] is False

    offered = await system.dialog_when(filed["dialog_id"], lambda d: d["offered_to"] == [ann])
    assert offered["status"] == "queued"
    assert offered["workflow"]["id"] == f"chat-{filed['chat_id']}"
    assert "handover" in offered["deadlines"] and "expiry" in offered["deadlines"]

    async with client_for(system.app, await operator_key(system, ann)) as as_ann:
        accepted = await as_ann.post(f"/v1/dialogs/{filed['dialog_id']}/accept")
        assert accepted.status_code == 200, accepted.text
        assert (accepted.json()["status"], accepted.json()["operator_id"]) == ("accepted", ann)

        replied = await as_ann.post(
            f"/v1/dialogs/{filed['dialog_id']}/messages", json={"text": "Hi, how can I help?"}
        )
        assert replied.status_code == 200, replied.text
        assert replied.json()["status"] == "operator_replied"

        closed = await as_ann.post(f"/v1/dialogs/{filed['dialog_id']}/close")
        assert closed.status_code == 200, closed.text
        # rating_wait 0: the close text and rating request go, and it is closed at once
        assert (closed.json()["status"], closed.json()["close_reason"]) == ("closed", "operator")

        rated = await system.client_writes(channel, secret, "tg-1", "m-2", "1")
        assert rated.status_code == 202, rated.text
        assert rated.json()["dialog_id"] == filed["dialog_id"]  # no new dialog
        final = await system.dialog_when(
            filed["dialog_id"], lambda d: d["rating"]["client"] is not None
        )
        messages = (await as_ann.get(f"/v1/dialogs/{filed['dialog_id']}/messages")).json()["items"]
    assert [(m["author"], m["text"]) for m in messages] == [
        ("client", "Hello"),
        ("system", texts.welcome.text),
        ("operator", "Hi, how can I help?"),
        ("system", texts.close.text),
        ("system", texts.rating.text_texts.request),
        ("client", "1"),
        ("system", texts.rating.text_texts.like),
    ]
    assert (final["status"], final["rating"]["client"]) == ("closed", "like")
    listed = (await system.admin.get(f"/v1/dialogs?line_id={closed.json()['line_id']}")).json()
    assert [(d["id"], d["rating"]["client"]) for d in listed["items"]] == [
        (filed["dialog_id"], "like")
    ]


async def test_the_same_channel_message_twice_is_stored_once(system: System):
    _, channel, secret = await system.line([])
    first = (await system.client_writes(channel, secret, "c-1", "m-1")).json()
    again = await system.client_writes(channel, secret, "c-1", "m-1")
    assert again.status_code == 202
    assert again.json() == {**first, "duplicate": True}
    async with system.app.state.sessions() as session:
        stored = await session.scalar(
            select(func.count()).select_from(Message).where(Message.chat_id == first["chat_id"])
        )
    assert stored == 1


async def test_a_wrong_channel_secret_is_401_and_stores_nothing(system: System):
    _, channel, _ = await system.line([])
    refused = await system.client_writes(channel, "not-the-secret", "c-1", "m-1")
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    async with system.app.state.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 0


async def test_actions_refused_with_409_or_403(system: System):
    ann, bob = await system.operator("Ann"), await system.operator("Bob")
    _, channel, secret = await system.line([ann, bob], distribution="strictly")
    dialog_id = (await system.client_writes(channel, secret, "c-1", "m-1")).json()["dialog_id"]
    await system.dialog_when(dialog_id, lambda d: d["offered_to"] == [ann])
    async with (
        client_for(system.app, await operator_key(system, ann)) as as_ann,
        client_for(system.app, await operator_key(system, bob)) as as_bob,
    ):
        not_offered = await as_bob.post(f"/v1/dialogs/{dialog_id}/accept")
        assert not_offered.status_code == 403  # someone else's dialog
        assert (await as_ann.post(f"/v1/dialogs/{dialog_id}/close")).status_code == 409
        assert (await as_ann.post(f"/v1/dialogs/{dialog_id}/accept")).status_code == 200
        again = await as_ann.post(f"/v1/dialogs/{dialog_id}/accept")  # a retry: the same
        assert (again.status_code, again.json()["operator_id"]) == (200, ann)
        assert (await as_bob.post(f"/v1/dialogs/{dialog_id}/close")).status_code == 403


async def test_messages_posted_while_the_worker_is_down_are_all_delivered(
    make_app, temporal, task_queue
):
    app = await make_app()
    app.state.temporal = temporal.client
    async with client_for(app, ADMIN_KEY) as admin:
        system = System(app, admin, temporal, task_queue)
        ann = await system.operator("Ann")
        _, channel, secret = await system.line([ann])
        async with running_worker(app, temporal, task_queue):
            first = (await system.client_writes(channel, secret, "c-1", "m-1")).json()
            await system.dialog_when(first["dialog_id"], lambda d: d["offered_to"] == [ann])
        # The worker (and its relay) is stopped: messages are still taken and kept.
        for i in range(2, 6):
            answer = await system.client_writes(channel, secret, "c-1", f"m-{i}")
            assert answer.status_code == 202
        async with app.state.sessions() as session:
            waiting = select(func.count()).where(
                Outbox.kind == "message", Outbox.delivered_at.is_(None)
            )  # (the first message's lead request may be waiting too)
            assert await session.scalar(waiting) == 4
        async with running_worker(app, temporal, task_queue):
            handle = temporal.client.get_workflow_handle(f"chat-{first['chat_id']}")
            for _ in range(200):
                state = await handle.query("state")
                if len(state["seen_message_ids"]) == 5:
                    break
                await asyncio.sleep(0.05)
            assert len(state["seen_message_ids"]) == 5


async def test_200_dialogs_at_once_never_give_anyone_a_fourth(system: System):
    operators = [await system.operator(f"Operator {i}") for i in range(5)]
    line_id, channel, secret = await system.line(
        operators, max_dialogs_per_operator=3, not_counted="answered"
    )
    answers = await asyncio.gather(
        *(system.client_writes(channel, secret, f"chat-{i}", "m-1") for i in range(200))
    )
    assert all(a.status_code == 202 for a in answers)

    async def held() -> dict[int | None, int]:
        async with system.app.state.sessions() as session:
            rows = await session.execute(
                select(Dialog.holder_id, func.count())
                .where(Dialog.line_id == line_id)
                .group_by(Dialog.holder_id)
            )
            return {holder: count for holder, count in rows.all()}

    for _ in range(300):  # sample while the offers are being made
        counts = await held()
        assert all(count <= 3 for holder, count in counts.items() if holder is not None), counts
        if sum(c for h, c in counts.items() if h is not None) == 15:
            break
        await asyncio.sleep(0.05)
    expected: dict[int | None, int] = {**{o: 3 for o in operators}, None: 185}
    assert counts == expected


async def test_deleting_a_line_with_force_closes_its_dialogs_silently(system: System):
    ann = await system.operator("Ann")
    line_id, channel, secret = await system.line([ann])
    filed = (await system.client_writes(channel, secret, "c-1", "m-1")).json()
    await system.dialog_when(filed["dialog_id"], lambda d: d["offered_to"] == [ann])
    assert (await system.admin.delete(f"/v1/lines/{line_id}")).status_code == 409

    assert (await system.admin.delete(f"/v1/lines/{line_id}?force=true")).status_code == 204

    handle = system.temporal.client.get_workflow_handle(f"chat-{filed['chat_id']}")
    result = await asyncio.wait_for(handle.result(), 15)
    assert (result["status"], result["close_reason"]) == ("closed", "line_deleted")
    async with system.app.state.sessions() as session:
        messages = await session.scalars(
            select(Message.text).where(Message.dialog_id == filed["dialog_id"]).order_by(Message.id)
        )
        welcome = LineSettings().welcome.text
        assert list(messages) == ["Hello", welcome]  # no close text, no rating request
    gone = await system.client_writes(channel, secret, "c-1", "m-2")
    assert gone.status_code == 401  # its channel went with the line: the secret proves nothing
