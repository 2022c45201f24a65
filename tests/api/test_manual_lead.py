"""A lead an operator asks for carries the conversation: the client's name and the dialog's
messages (who wrote what, in order, with times), bounded, as Bitrix24's NAME and COMMENTS."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import delete, select

from activities.crm import CrmActivities
from core.crm import leads
from core.crm.backends import BuiltinCrm
from core.crm.bitrix24 import Bitrix24Crm
from core.models import Dialog, Message, Outbox
from tests.api.test_crm_api import client_dialog, ok, operator, problem
from tests.crm_fake.bitrix24 import FakeBitrix24, serve_fake
from workflows.models import CrmTask

START = datetime(2025, 3, 4, 9, 30, tzinfo=UTC)


@pytest.fixture
async def portal() -> AsyncIterator[tuple[FakeBitrix24, Bitrix24Crm]]:
    async with serve_fake() as fake, httpx.AsyncClient(timeout=5.0) as http:
        yield fake, Bitrix24Crm(fake.webhook_url, http)


async def quiet_dialog(app: FastAPI, admin: AsyncClient, chat: str) -> int:
    """A client's dialog with its first message and no lead owed yet (``crm.create: none``
    would leave it so): the lead comes only when someone asks."""
    dialog_id = await client_dialog(app, admin, external_id=chat, name="Carol")
    async with app.state.sessions() as session:
        dialog = await session.get(Dialog, dialog_id)
        dialog.lead_requested = False
        await session.execute(delete(Outbox).where(Outbox.kind == "lead"))
        await session.commit()
    return dialog_id


async def say(app: FastAPI, dialog_id: int, said: list[tuple[str, int | None, str]]) -> None:
    """Messages after the client's first, a minute apart: (author, operator, text)."""
    async with app.state.sessions() as session:
        dialog = await session.get(Dialog, dialog_id)
        first = await session.scalar(select(Message).where(Message.dialog_id == dialog_id))
        first.created_at = START
        for n, (author, operator_id, text) in enumerate(said, start=1):
            session.add(
                Message(
                    chat_id=dialog.chat_id,
                    dialog_id=dialog_id,
                    author=author,
                    operator_id=operator_id,
                    text=text,
                    created_at=START + timedelta(minutes=n),
                )
            )
        await session.commit()


async def worker_makes_the_lead(app: FastAPI, crm: Bitrix24Crm, dialog_id: int) -> str:
    """What the relay and ``CrmSyncWorkflow`` do with the request's outbox row; the external
    lead's id."""
    async with app.state.sessions() as session:
        row = await session.scalar(
            select(Outbox).where(Outbox.kind == "lead", Outbox.dialog_id == dialog_id)
        )
    assert row is not None
    task = CrmTask(kind="create_lead", dialog_id=dialog_id, request_id=row.id)
    outcome = await CrmActivities(app.state.sessions, crm).create_lead(task)
    assert outcome.external_id is not None
    return outcome.external_id


async def test_the_lead_asked_for_carries_the_clients_name_and_the_conversation(
    app: FastAPI, admin: AsyncClient, portal: tuple[FakeBitrix24, Bitrix24Crm]
) -> None:
    fake, crm = portal
    olga = await operator(admin, "Olga")
    dialog_id = await quiet_dialog(app, admin, "manual-1")
    await say(
        app,
        dialog_id,
        [
            ("system", None, "Thank you, an operator will answer soon."),
            ("operator", olga, "Hello Carol!\nHow can I help?"),
            ("client", None, "How much is the blue one?"),
        ],
    )

    ok(await admin.post(f"/v1/dialogs/{dialog_id}/crm/lead"), 202)
    external_id = await worker_makes_the_lead(app, crm, dialog_id)

    lead = fake.leads[external_id]
    assert lead["NAME"] == "Carol"
    assert lead["COMMENTS"] == "\n".join(
        [
            "[2025-03-04 09:30:00 UTC] Carol: Hello",
            "[2025-03-04 09:31:00 UTC] automatic text: Thank you, an operator will answer soon.",
            "[2025-03-04 09:32:00 UTC] Olga (operator): Hello Carol!\n    How can I help?",
            "[2025-03-04 09:33:00 UTC] Carol: How much is the blue one?",
        ]
    )
    made = ok(await admin.post(f"/v1/dialogs/{dialog_id}/crm/lead"))
    assert made["lead"]["external_id"] == external_id


async def test_the_built_in_crm_keeps_the_conversation_on_the_lead_without_notes(
    app: FastAPI, admin: AsyncClient
) -> None:
    olga = await operator(admin, "Olga")
    dialog_id = await quiet_dialog(app, admin, "manual-builtin")
    await say(
        app,
        dialog_id,
        [("operator", olga, "Hello Carol!"), ("note", None, "Message 2 did not reach the client")],
    )

    ok(await admin.post(f"/v1/dialogs/{dialog_id}/crm/lead"), 202)
    async with app.state.sessions() as session:
        row = await session.scalar(select(Outbox).where(Outbox.kind == "lead"))
    assert row is not None
    task = CrmTask(kind="create_lead", dialog_id=dialog_id, request_id=row.id)
    outcome = await CrmActivities(app.state.sessions, BuiltinCrm()).create_lead(task)

    lead = ok(await admin.get(f"/v1/crm/leads/{outcome.lead_id}"))
    assert lead["comments"] == "\n".join(
        [
            "[2025-03-04 09:30:00 UTC] Carol: Hello",
            "[2025-03-04 09:31:00 UTC] Olga (operator): Hello Carol!",
        ]
    )


async def test_a_long_dialog_sends_only_its_newest_messages_within_the_bounds(
    app: FastAPI, admin: AsyncClient, portal: tuple[FakeBitrix24, Bitrix24Crm]
) -> None:
    fake, crm = portal
    dialog_id = await quiet_dialog(app, admin, "manual-2")
    long_text = "x" * 5000
    await say(app, dialog_id, [("client", None, f"{n}: {long_text}") for n in range(1, 300)])

    ok(await admin.post(f"/v1/dialogs/{dialog_id}/crm/lead"), 202)
    comments: str = fake.leads[await worker_makes_the_lead(app, crm, dialog_id)]["COMMENTS"]

    header, *lines = comments.split("\n")
    assert len(comments) <= leads.HISTORY_CHARS + len(header) + 1
    assert header == f"({300 - len(lines)} earlier messages left out)"
    assert lines[-1].startswith("[2025-03-04 14:29:00 UTC] Carol: 299: xxx")  # the newest
    assert all(len(line) <= 40 + leads.HISTORY_MESSAGE_CHARS for line in lines)
    assert [int(line.split(": ")[1]) for line in lines] == list(range(300 - len(lines), 300))


async def test_asking_for_the_lead_of_a_dialog_that_is_not_there_names_the_dialog(
    admin: AsyncClient,
) -> None:
    assert (
        "dialog 999999" in problem(await admin.post("/v1/dialogs/999999/crm/lead"), 404)["detail"]
    )
    not_an_id = problem(await admin.post("/v1/dialogs/abc/crm/lead"), 404)
    assert not_an_id["detail"] == "dialog abc does not exist"


def test_history_is_in_order_with_times_and_bounded() -> None:
    at = datetime(2025, 1, 2, 3, 4, 5)  # naive times are UTC, as SQLite gives them back
    said = [leads.Said(at + timedelta(seconds=n), "Carol", f"m{n}") for n in range(60)]

    text = leads.history(said, total=75)

    header, *lines = text.split("\n")
    assert header == "(25 earlier messages left out)"
    assert len(lines) == leads.HISTORY_MESSAGES
    assert lines[0] == "[2025-01-02 03:04:15 UTC] Carol: m10"
    assert lines[-1] == "[2025-01-02 03:05:04 UTC] Carol: m59"
    assert leads.history([], total=0) == ""
    assert leads.speaker("operator", "Carol", None) == "operator"
    assert leads.speaker("bot", "Carol", None) == "bot"
