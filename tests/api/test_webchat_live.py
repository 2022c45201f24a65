"""The web chat, live: the visitor's stream brings their chat's messages in order, resumes
after the last one shown, and carries typing both ways (the visitor's text reaches the
operator's console only where the line watches typing). Read for real under uvicorn."""

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from core.inbound import message_created
from core.models import Dialog, Message
from tests.api.test_events_stream import served
from tests.api.test_webchat import Widget, connect, ok
from tests.conftest import client_for


@pytest.fixture
async def base_url(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    async with served(app, monkeypatch) as url:
        yield url


Got = list[tuple[str | None, str, Any]]


def messages(count: int) -> Callable[[Got], bool]:
    """``count`` messages and the dialog's state (sent after the messages read with it)."""
    return lambda got: (
        sum(kind == "message" for _, kind, _ in got) == count
        and any(kind == "dialog" for _, kind, _ in got)
    )


def typing_signals(count: int) -> Callable[[Got], bool]:
    return lambda got: sum(kind == "typing" for _, kind, _ in got) == count


async def events(
    base_url: str, path: str, token: str, enough: Callable[[Got], bool], opened: Any = None
) -> Got:
    """Open the stream (then await ``opened``), take events until ``enough``: (id, event,
    data) each."""
    found: list[tuple[str | None, str, Any]] = []
    fields: dict[str, str] = {}
    async with (
        asyncio.timeout(10),
        httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"}) as http,
        http.stream("GET", path) as response,
    ):
        assert response.status_code == 200, await response.aread()
        if opened is not None:
            await opened()
        async for line in response.aiter_lines():
            if line and not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
            elif not line and "data" in fields:
                found.append((fields.get("id"), fields["event"], json.loads(fields["data"])))
                fields = {}
                if enough(found):
                    break
            elif not line:
                fields = {}
    return found


async def operator_reply(app: FastAPI, dialog_id: int, operator_id: int, text: str) -> int:
    """What the reply activity stores: the operator's message and its event."""
    async with app.state.sessions() as session:
        dialog = await session.get(Dialog, dialog_id)
        assert dialog is not None
        dialog.operator_id, dialog.status = operator_id, "accepted"
        message = Message(
            chat_id=dialog.chat_id, dialog_id=dialog.id, author="operator",
            operator_id=operator_id, text=text,
        )  # fmt: skip
        session.add(message)
        await session.flush()
        message_created(session, dialog, message)
        await session.commit()
        return message.id


async def operator_key(admin: httpx.AsyncClient, name: str) -> tuple[int, str]:
    operator_id = ok(await admin.post("/v1/operators", json={"name": name}), 201)["id"]
    body = {"role": "operator", "operator_id": operator_id}
    return operator_id, ok(await admin.post("/v1/api-keys", json=body), 201)["key"]


async def test_the_visitor_sees_replies_live_and_resumes_after_the_last_shown(
    app: FastAPI, admin: httpx.AsyncClient, base_url: str
):
    widget = Widget(app, await connect(admin))
    await widget.open()
    assert widget.token is not None
    written = ok(await widget.write("Hello", "c-1"), 202)
    ann, _ = await operator_key(admin, "Ann")
    replies: list[int] = []

    async def operator_answers() -> None:
        replies.append(await operator_reply(app, written["dialog_id"], ann, "Hi there"))
        replies.append(await operator_reply(app, written["dialog_id"], ann, "How can I help?"))

    stream = f"{widget.base}/events"
    got = await events(base_url, stream, widget.token, messages(3), operator_answers)
    resumed = await events(base_url, f"{stream}?after={replies[0]}", widget.token, messages(1))

    texts = [data["text"] for _, kind, data in got if kind == "message"]
    assert texts == ["Hello", "Hi there", "How can I help?"]  # in order, each once
    ids = [int(event_id or 0) for event_id, kind, _ in got if kind == "message"]
    assert ids == [written["message_id"], *replies]  # the id to resume after
    assert any(kind == "dialog" for _, kind, _ in got)
    assert [data["text"] for _, kind, data in resumed if kind == "message"] == ["How can I help?"]
    sender = next(data["sender"] for _, kind, data in got if data.get("text") == "Hi there")
    assert sender["name"] == "Ann"


@pytest.mark.parametrize("watch_typing", [True, False])
async def test_typing_goes_both_ways_and_the_text_only_where_the_line_watches(
    app: FastAPI, admin: httpx.AsyncClient, base_url: str, watch_typing: bool
):
    channel = await connect(admin)
    ok(await admin.patch(f"/v1/lines/{channel['line_id']}", json={"watch_typing": watch_typing}))
    widget = Widget(app, channel)
    await widget.open()
    assert widget.token is not None
    dialog_id = ok(await widget.write("Hello", "c-1"), 202)["dialog_id"]
    ann, ann_key = await operator_key(admin, "Ann")
    await operator_reply(app, dialog_id, ann, "Hi")
    typing = f"/v1/dialogs/{dialog_id}/typing"

    async def visitor_types() -> None:
        async with client_for(app, widget.token) as visitor:
            assert (await visitor.post(typing, json={"text": "My order num"})).status_code == 204

    async def ann_types() -> None:
        async with client_for(app, ann_key) as as_ann:
            assert (await as_ann.post(typing, json={"text": "Let me"})).status_code == 204

    on_console = await events(base_url, "/v1/events", ann_key, typing_signals(1), visitor_types)
    stream = f"{widget.base}/events?after=999999"
    in_widget = await events(base_url, stream, widget.token, typing_signals(1), ann_types)

    typed = [(event_id, data) for event_id, kind, data in on_console if kind == "typing"]
    assert typed[0][0] is None  # not an event to resume after
    assert typed[0][1]["dialog_id"] == dialog_id
    assert typed[0][1]["text"] == ("My order num" if watch_typing else "…")
    assert [(kind, data) for _, kind, data in in_widget if kind == "typing"] == [
        ("typing", {"name": "Ann", "typing": True})
    ]


async def test_only_the_visitor_and_those_who_see_the_dialog_may_signal_typing(
    app: FastAPI, admin: httpx.AsyncClient
):
    channel = await connect(admin)
    widget, stranger = Widget(app, channel), Widget(app, channel)
    await widget.open()
    await stranger.open()
    dialog_id = ok(await widget.write("Hello", "c-1"), 202)["dialog_id"]
    _, ben_key = await operator_key(admin, "Ben")  # not offered the dialog
    typing = f"/v1/dialogs/{dialog_id}/typing"

    async with client_for(app, stranger.token) as as_stranger, client_for(app, None) as nobody:
        by_stranger = await as_stranger.post(typing, json={"text": "x"})
        by_nobody = await nobody.post(typing, json={"text": "x"})
        unknown = await nobody.post("/v1/dialogs/999999/typing", json={"text": "x"})
    async with client_for(app, ben_key) as as_ben:
        by_ben = await as_ben.post(typing, json={"text": "x"})

    assert [r.status_code for r in (by_stranger, by_nobody, unknown, by_ben)] == [
        401,
        401,
        401,
        403,
    ]
