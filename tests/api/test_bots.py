"""Chat-bots through the HTTP API: the ``/v1/bots`` resource, lines and keys that name a bot,
and what a ``bot`` key may see and do.

Dialogs are written straight into the database here (the bot's own flow through a running
workflow is tested in tests/workflows/ and tests/integration/). Actions reach a stand-in for
Temporal that records the update it was asked for and answers as the workflow would.
"""

from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response
from sqlalchemy import select
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from core.models import Chat, Dialog, Message
from tests.conftest import client_for
from workflows.dialog import DialogWorkflow
from workflows.models import BotAction, BotReply, DialogState, OperatorAction

PROBLEM_JSON = "application/problem+json"
NOBODY = 9999  # no bot has this id: the tables start empty


def ok(response: Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def problem(response: Response, status: int) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    return response.json()


def fields(response: Response, status: int = 422) -> list[str]:
    return [error["field"] for error in problem(response, status)["errors"]]


async def create_bot(admin: AsyncClient, name: str = "Greeter") -> int:
    bot_id: int = ok(await admin.post("/v1/bots", json={"name": name}), 201)["id"]
    return bot_id


async def create_line(admin: AsyncClient, body: dict[str, Any] | None = None) -> int:
    line_id: int = ok(await admin.post("/v1/lines", json=body or {}), 201)["id"]
    return line_id


async def key(admin: AsyncClient, role: str, **binding: int) -> str:
    issued: str = ok(await admin.post("/v1/api-keys", json={"role": role, **binding}), 201)["key"]
    return issued


def with_bot(bot_id: int | None, enabled: bool = True) -> dict[str, Any]:
    return {"bot": {"enabled": enabled, "bot_id": bot_id}}


# --- the resource ------------------------------------------------------------------------


async def test_a_bot_is_created_read_renamed_and_deleted(admin: AsyncClient):
    created = ok(await admin.post("/v1/bots", json={"name": "  Greeter "}), 201)
    assert created.keys() == {"id", "name", "created_at"}
    assert created["name"] == "Greeter"
    bot_id = created["id"]
    other = await create_bot(admin, "Sorter")

    assert ok(await admin.get(f"/v1/bots/{bot_id}")) == created
    assert [b["id"] for b in ok(await admin.get("/v1/bots"))] == [bot_id, other]

    renamed = ok(await admin.patch(f"/v1/bots/{bot_id}", json={"name": "Welcome bot"}))
    assert renamed == {**created, "name": "Welcome bot"}
    assert ok(await admin.patch(f"/v1/bots/{bot_id}", json={})) == renamed
    assert ok(await admin.get(f"/v1/bots/{bot_id}")) == renamed

    assert (await admin.delete(f"/v1/bots/{bot_id}")).status_code == 204
    problem(await admin.get(f"/v1/bots/{bot_id}"), 404)
    problem(await admin.patch(f"/v1/bots/{bot_id}", json={"name": "Back"}), 404)
    problem(await admin.delete(f"/v1/bots/{bot_id}"), 404)
    assert [b["id"] for b in ok(await admin.get("/v1/bots"))] == [other]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"name": 5}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"name": "Greeter", "token": "secret"}, "token"),
    ],
)
async def test_a_bad_bot_body_is_422_naming_the_field(admin: AsyncClient, body, field):
    assert fields(await admin.post("/v1/bots", json=body)) == [field]
    bot_id = await create_bot(admin)
    if body:
        assert fields(await admin.patch(f"/v1/bots/{bot_id}", json=body)) == [field]
    assert ok(await admin.get(f"/v1/bots/{bot_id}"))["name"] == "Greeter"


@pytest.mark.parametrize("bot_id", [NOBODY, 0, 2**31])
async def test_an_unknown_bot_is_404(admin: AsyncClient, bot_id):
    problem(await admin.get(f"/v1/bots/{bot_id}"), 404)
    problem(await admin.patch(f"/v1/bots/{bot_id}", json={"name": "x"}), 404)
    problem(await admin.delete(f"/v1/bots/{bot_id}"), 404)


async def test_supervisors_read_bots_operators_and_bots_do_not(app: FastAPI, admin: AsyncClient):
    bot_id = await create_bot(admin)
    ann = ok(await admin.post("/v1/operators", json={"name": "Ann"}), 201)["id"]
    async with client_for(app, await key(admin, "supervisor")) as supervisor:
        assert [b["id"] for b in ok(await supervisor.get("/v1/bots"))] == [bot_id]
        assert ok(await supervisor.get(f"/v1/bots/{bot_id}"))["id"] == bot_id
    for role, binding in (("operator", {"operator_id": ann}), ("bot", {"bot_id": bot_id})):
        async with client_for(app, await key(admin, role, **binding)) as caller:
            for path in ("/v1/bots", f"/v1/bots/{bot_id}"):
                assert f"the {role} role" in problem(await caller.get(path), 403)["detail"]


async def test_a_bot_a_line_hands_dialogs_to_cannot_be_deleted(admin: AsyncClient):
    bot_id = await create_bot(admin)
    first = await create_line(admin, with_bot(bot_id))
    second = await create_line(admin, with_bot(bot_id))
    await create_line(admin, with_bot(bot_id, enabled=False))  # keeps the id, not the bot

    refused = problem(await admin.delete(f"/v1/bots/{bot_id}"), 409)
    assert f"lines {first}, {second}" in refused["detail"]
    ok(await admin.patch(f"/v1/lines/{first}", json={"bot": {"enabled": False}}))
    refused = problem(await admin.delete(f"/v1/bots/{bot_id}"), 409)
    assert f"line {second};" in refused["detail"]
    assert ok(await admin.get(f"/v1/bots/{bot_id}"))["id"] == bot_id

    assert (await admin.delete(f"/v1/lines/{second}")).status_code == 204  # a deleted line
    assert (await admin.delete(f"/v1/bots/{bot_id}")).status_code == 204


# --- lines and keys name bots --------------------------------------------------------------


async def test_a_line_enabling_a_bot_that_does_not_exist_is_404(admin: AsyncClient):
    deleted = await create_bot(admin, "Old")
    assert (await admin.delete(f"/v1/bots/{deleted}")).status_code == 204
    for missing in (NOBODY, deleted):
        response = await admin.post("/v1/lines", json=with_bot(missing))
        assert fields(response, 404) == ["bot.bot_id"]
        assert f"bot {missing} does not exist" in response.json()["detail"]
    assert ok(await admin.get("/v1/lines")) == []

    line_id = await create_line(admin)
    for missing in (NOBODY, deleted):
        patched = await admin.patch(f"/v1/lines/{line_id}", json=with_bot(missing))
        assert fields(patched, 404) == ["bot.bot_id"]
    # a stored id is checked once the bot is switched on
    parked = ok(await admin.patch(f"/v1/lines/{line_id}", json=with_bot(deleted, enabled=False)))
    assert parked["bot"]["bot_id"] == deleted
    enabling = await admin.patch(f"/v1/lines/{line_id}", json={"bot": {"enabled": True}})
    assert fields(enabling, 404) == ["bot.bot_id"]
    assert ok(await admin.get(f"/v1/lines/{line_id}"))["bot"] == parked["bot"]


async def test_a_line_enabling_an_existing_bot_is_taken(admin: AsyncClient):
    bot_id = await create_bot(admin)
    created = ok(await admin.post("/v1/lines", json=with_bot(bot_id)), 201)
    assert (created["bot"]["enabled"], created["bot"]["bot_id"]) == (True, bot_id)

    line_id = await create_line(admin)
    patched = ok(await admin.patch(f"/v1/lines/{line_id}", json=with_bot(bot_id)))
    assert (patched["bot"]["enabled"], patched["bot"]["bot_id"]) == (True, bot_id)
    renamed = ok(await admin.patch(f"/v1/lines/{line_id}", json={"name": "Sales"}))
    assert renamed["bot"] == patched["bot"]


async def test_a_bot_key_must_name_an_existing_bot(admin: AsyncClient):
    deleted = await create_bot(admin, "Old")
    assert (await admin.delete(f"/v1/bots/{deleted}")).status_code == 204
    for missing in (NOBODY, deleted):
        response = await admin.post("/v1/api-keys", json={"role": "bot", "bot_id": missing})
        assert fields(response, 404) == ["bot_id"]
        assert f"bot {missing} does not exist" in response.json()["detail"]
    assert ok(await admin.get("/v1/api-keys")) == []

    bot_id = await create_bot(admin)
    issued = ok(await admin.post("/v1/api-keys", json={"role": "bot", "bot_id": bot_id}), 201)
    assert (issued["role"], issued["bot_id"], issued["operator_id"]) == ("bot", bot_id, None)


# --- what a bot key sees -------------------------------------------------------------------


async def add_dialog(
    app: FastAPI, line_id: int, channel_id: int, name: str, status: str, bot_id: int | None
) -> int:
    """A dialog row (and its chat and a client message) as the workflow would leave it."""
    async with app.state.sessions() as session:
        chat = Chat(channel_id=channel_id, line_id=line_id, external_id=name)
        session.add(chat)
        await session.flush()
        closed = status == "closed"
        dialog = Dialog(
            line_id=line_id,
            chat_id=chat.id,
            status=status,
            close_reason="bot" if closed else None,
            bot_id=bot_id,
        )
        session.add(dialog)
        await session.flush()
        session.add(
            Message(
                chat_id=chat.id, dialog_id=dialog.id, author="client", external_id=name, text="Hi"
            )
        )
        await session.commit()
        return dialog.id


@dataclass
class Dialogs:
    """Two bots, a key of the first, and dialogs: each bot's, and one with no bot."""

    mine: int
    theirs: int
    ann: int
    line_id: int
    held: int  # status bot, with mine
    settled: int  # closed by mine
    other_bot: int
    no_bot: int
    key: str


@pytest.fixture
async def dialogs(app: FastAPI, admin: AsyncClient) -> Dialogs:
    mine, theirs = await create_bot(admin, "Mine"), await create_bot(admin, "Theirs")
    line_id = await create_line(admin, with_bot(mine))
    channel = ok(await admin.post(f"/v1/lines/{line_id}/channels", json={"type": "api"}), 201)
    ann = ok(await admin.post("/v1/operators", json={"name": "Ann"}), 201)["id"]

    async def add(name: str, status: str, bot_id: int | None) -> int:
        return await add_dialog(app, line_id, channel["id"], name, status, bot_id)

    return Dialogs(
        mine=mine,
        theirs=theirs,
        ann=ann,
        line_id=line_id,
        held=await add("held", "bot", mine),
        settled=await add("settled", "closed", mine),
        other_bot=await add("other-bot", "bot", theirs),
        no_bot=await add("no-bot", "queued", None),
        key=await key(admin, "bot", bot_id=mine),
    )


async def test_a_bot_key_sees_only_its_bots_dialogs(
    app: FastAPI, admin: AsyncClient, dialogs: Dialogs
):
    # Closed dialogs are read from the database alone; a stand-in keeps the test off Temporal.
    app.state.temporal = object()
    async with client_for(app, dialogs.key) as bot:
        listed = ok(await bot.get("/v1/dialogs"))
        assert [(d["id"], d["bot_id"]) for d in listed["items"]] == [
            (dialogs.settled, dialogs.mine),
            (dialogs.held, dialogs.mine),
        ]
        assert ok(await bot.get("/v1/dialogs", params={"status": "bot"}))["items"][0]["id"] == (
            dialogs.held
        )
        one = ok(await bot.get(f"/v1/dialogs/{dialogs.settled}"))
        assert (one["bot_id"], one["close_reason"]) == (dialogs.mine, "bot")
        messages = ok(await bot.get(f"/v1/dialogs/{dialogs.held}/messages"))["items"]
        assert [(m["author"], m["text"]) for m in messages] == [("client", "Hi")]

        for dialog_id in (dialogs.other_bot, dialogs.no_bot):
            refused = problem(await bot.get(f"/v1/dialogs/{dialog_id}"), 403)
            assert f"not with bot {dialogs.mine}" in refused["detail"]
            problem(await bot.get(f"/v1/dialogs/{dialog_id}/messages"), 403)
        problem(await bot.get(f"/v1/dialogs/{NOBODY}"), 404)
        # the operators' console and the configuration are not for bots
        problem(await bot.get(f"/v1/operators/{dialogs.ann}/dialogs"), 403)
        problem(await bot.get(f"/v1/lines/{dialogs.line_id}"), 403)

    everything = ok(await admin.get("/v1/dialogs"))["items"]
    assert {d["id"]: d["bot_id"] for d in everything} == {
        dialogs.held: dialogs.mine,
        dialogs.settled: dialogs.mine,
        dialogs.other_bot: dialogs.theirs,
        dialogs.no_bot: None,
    }


# --- what a bot key does -------------------------------------------------------------------


class FakeTemporal:
    """Stands in for the Temporal client: records each update and answers with ``state`` (or
    refuses it with ``refusal``, as a workflow validator would)."""

    def __init__(self, state: DialogState) -> None:
        self.state = state
        self.refusal: str | None = None
        self.updates: list[tuple[Any, Any]] = []

    def get_workflow_handle_for(self, run: Any, workflow_id: str) -> "FakeTemporal":
        return self

    async def execute_update(
        self, update: Any, argument: Any, id: str | None = None
    ) -> DialogState:
        assert argument.expires_at is not None  # the API's deadline travels with it
        self.updates.append((update, argument.model_copy(update={"expires_at": None})))
        if self.refusal is not None:
            raise WorkflowUpdateFailedError(ApplicationError(self.refusal))
        return self.state


@pytest.fixture
async def fake_temporal(app: FastAPI, dialogs: Dialogs) -> FakeTemporal:
    async with app.state.sessions() as session:
        held = await session.get(Dialog, dialogs.held)
        assert held is not None
        state = DialogState(
            dialog_id=held.id,
            chat_id=held.chat_id,
            line_id=held.line_id,
            channel_type="api",
            status="bot",
            bot_id=dialogs.mine,
        )
    fake = FakeTemporal(state)
    app.state.temporal = fake
    return fake


async def messages_of(app: FastAPI, dialog_id: int) -> list[tuple[str, int | None, str]]:
    async with app.state.sessions() as session:
        rows = await session.scalars(
            select(Message).where(Message.dialog_id == dialog_id).order_by(Message.id)
        )
        return [(m.author, m.operator_id, m.text) for m in rows]


async def test_a_bot_replies_as_the_bot(
    app: FastAPI, dialogs: Dialogs, fake_temporal: FakeTemporal
):
    async with client_for(app, dialogs.key) as bot:
        answer = ok(await bot.post(f"/v1/dialogs/{dialogs.held}/messages", json={"text": "Hello"}))
    assert (answer["status"], answer["bot_id"]) == ("bot", dialogs.mine)
    stored = await messages_of(app, dialogs.held)
    assert stored == [("client", None, "Hi"), ("bot", None, "Hello")]
    async with app.state.sessions() as session:
        message_id = await session.scalar(select(Message.id).where(Message.author == "bot"))
    assert fake_temporal.updates == [
        (
            DialogWorkflow.bot_reply,
            BotReply(dialog_id=dialogs.held, bot_id=dialogs.mine, message_id=message_id),
        )
    ]


async def test_a_refused_bot_reply_is_409_and_not_kept(
    app: FastAPI, dialogs: Dialogs, fake_temporal: FakeTemporal
):
    fake_temporal.refusal = f"dialog {dialogs.held} is not held by bot {dialogs.mine}"
    async with client_for(app, dialogs.key) as bot:
        refused = await bot.post(f"/v1/dialogs/{dialogs.held}/messages", json={"text": "Late"})
    assert problem(refused, 409)["detail"] == fake_temporal.refusal
    assert await messages_of(app, dialogs.held) == [("client", None, "Hi")]


async def test_a_bot_closes_and_hands_over_its_dialog(
    app: FastAPI, admin: AsyncClient, dialogs: Dialogs, fake_temporal: FakeTemporal
):
    action = BotAction(dialog_id=dialogs.held, bot_id=dialogs.mine)
    async with client_for(app, dialogs.key) as bot:
        ok(await bot.post(f"/v1/dialogs/{dialogs.held}/bot-handover"))
        ok(await bot.post(f"/v1/dialogs/{dialogs.held}/close"))
        ok(await bot.post(f"/v1/dialogs/{dialogs.held}/close", json={}))
    assert fake_temporal.updates == [
        (DialogWorkflow.bot_handover, action),
        (DialogWorkflow.bot_close, action),
        (DialogWorkflow.bot_close, action),
    ]
    # others close as before
    fake_temporal.updates.clear()
    ok(await admin.post(f"/v1/dialogs/{dialogs.held}/close"))
    assert fake_temporal.updates == [
        (DialogWorkflow.close, OperatorAction(dialog_id=dialogs.held, by_supervisor=True))
    ]


async def test_a_bot_key_acts_only_as_its_bot_on_its_dialogs(
    app: FastAPI, admin: AsyncClient, dialogs: Dialogs, fake_temporal: FakeTemporal
):
    held = f"/v1/dialogs/{dialogs.held}"
    async with client_for(app, dialogs.key) as bot:
        for dialog_id in (dialogs.other_bot, dialogs.no_bot):
            for action in ("messages", "close", "bot-handover"):
                text = {"text": "Hi"} if action == "messages" else None
                problem(await bot.post(f"/v1/dialogs/{dialog_id}/{action}", json=text), 403)
        as_operator = {"operator_id": dialogs.ann}
        refused = await bot.post(f"{held}/messages", json={"text": "Hi", **as_operator})
        assert "acts only as its bot" in problem(refused, 403)["detail"]
        problem(await bot.post(f"{held}/close", json=as_operator), 403)
        for action, body in (
            ("accept", None),
            ("skip", None),
            ("spam", None),
            ("pin", None),
            ("unpin", None),
            ("transfer", {"line_id": dialogs.line_id}),
            ("intercept", {"operator_id": dialogs.ann}),
            ("supervisor-rating", {"rating": 5}),
        ):
            refused = await bot.post(f"{held}/{action}", json=body)
            assert "the bot role" in problem(refused, 403)["detail"], action
    async with client_for(app, await key(admin, "supervisor")) as supervisor:
        problem(await supervisor.post(f"{held}/bot-handover"), 403)
    async with client_for(app, await key(admin, "operator", operator_id=dialogs.ann)) as ann:
        problem(await ann.post(f"{held}/bot-handover"), 403)
    assert "the admin role" in problem(await admin.post(f"{held}/bot-handover"), 403)["detail"]
    assert fake_temporal.updates == []
    assert await messages_of(app, dialogs.held) == [("client", None, "Hi")]
