"""The first operator who owns a dialog is responsible for its client: for the lead the
dialog made and for the contact, where nobody is yet, in our tables and in Bitrix24; later
owners change nothing (a transfer only with ``crm.transfer_changes_responsible``), and the
client's next dialog goes to that operator first (``crm.forward_to_responsible``)."""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

import relay
from core.crm.bitrix24 import Bitrix24Crm
from core.crm.models import Contact, Lead
from core.models import Dialog, Outbox
from tests.crm_fake.bitrix24 import FakeBitrix24, serve_fake
from tests.workflows.harness import Harness
from worker import build_worker
from workflows.crm_sync import CrmSyncWorkflow, workflow_id
from workflows.models import CrmTask, Transfer

STRICTLY: dict[str, Any] = {"distribution": "strictly", "handover_after": 3600}


async def tracked(
    harness: Harness, handle: WorkflowHandle[Any, Any], after: Dialog | None = None
) -> Dialog:
    """The dialog row once the chat tracker has linked it to a contact (``after``: the chat's
    dialog that ended before, whose run the handle may still show)."""
    earlier = after.id if after else None
    await harness.eventually(handle, lambda s: s.tracked and s.dialog_id != earlier)
    row = await harness.row(handle)
    assert row.contact_id is not None
    return row


async def responsibles(harness: Harness, row: Dialog) -> tuple[int | None, int | None]:
    """Who is responsible for the dialog's lead (None: no lead, or nobody) and contact."""
    async with harness.sessions() as session:
        lead = await session.scalar(select(Lead).where(Lead.dialog_id == row.id))
        contact = await session.get(Contact, row.contact_id)
    assert contact is not None
    return (lead.responsible_id if lead else None), contact.responsible_id


async def owner_rows(harness: Harness, dialog_id: int) -> int:
    """Outbox rows telling the external CRM about a lead's new responsible."""
    async with harness.sessions() as session:
        rows = await session.scalars(
            select(Outbox.id).where(Outbox.kind == "lead_owner", Outbox.dialog_id == dialog_id)
        )
        return len(list(rows))


async def transfer(
    handle: WorkflowHandle[Any, Any], dialog_id: int, to: int, by: int | None = None
) -> None:
    """A transfer by operator ``by``; without one, a supervisor's interception."""
    await handle.execute_update(
        "transfer",
        Transfer(dialog_id=dialog_id, operator_id=by, by_supervisor=by is None, to_operator_id=to),
    )


async def test_a_returning_client_is_offered_first_to_the_operator_who_first_accepted(
    harness: Harness,
) -> None:
    bob, ann = await harness.operators(2)
    channel = await harness.line([bob, ann], {"rating_wait": 0}, **STRICTLY)
    first = await harness.client_writes(channel, "first-acceptor-1", "Hi", name="Carol")
    row = await tracked(harness, first)
    await harness.offered(first, [bob])
    await harness.skip(first, bob)
    await harness.offered(first, [ann])
    await harness.accept(first, ann)  # the first accept
    await harness.skip(first, ann)
    await harness.offered(first, [bob])
    await harness.accept(first, bob)  # a later one: bob is not responsible for Carol
    assert await responsibles(harness, row) == (ann, ann)
    await harness.closed_for_good(first, bob, row.id)

    again = await harness.client_writes(channel, "first-acceptor-1", "Me again")
    state = await harness.offered(again, [ann])  # bob would come first in the queue's order
    assert state.dialog_id != row.id
    assert (await harness.accept(again, ann)).operator_id == ann


async def test_without_forwarding_the_returning_client_takes_the_queue_order(
    harness: Harness,
) -> None:
    bob, ann = await harness.operators(2)
    settings = {"rating_wait": 0, "crm": {"forward_to_responsible": False}}
    channel = await harness.line([bob, ann], settings, **STRICTLY)
    first = await harness.client_writes(channel, "first-acceptor-2", "Hi")
    row = await tracked(harness, first)
    await harness.offered(first, [bob])
    await harness.skip(first, bob)
    await harness.offered(first, [ann])
    await harness.accept(first, ann)
    await harness.closed_for_good(first, ann, row.id)

    again = await harness.client_writes(channel, "first-acceptor-2", "Me again")
    await harness.offered(again, [bob])


async def test_the_first_accept_makes_the_operator_responsible_for_the_lead_and_the_contact(
    harness: Harness,
) -> None:
    ann, bob, cid = await harness.operators(3)
    settings = {"crm": {"transfer_changes_responsible": False}}
    channel = await harness.line([ann, bob], settings, **STRICTLY)
    dialog = await harness.client_writes(channel, "first-acceptor-3", "Hi", name="Carol")
    row = await tracked(harness, dialog)
    assert await responsibles(harness, row) == (None, None)  # the lead made at the start

    await harness.offered(dialog, [ann])
    await harness.accept(dialog, ann)
    assert await responsibles(harness, row) == (ann, ann)

    await harness.skip(dialog, ann)  # back to the queue, then bob's
    await harness.offered(dialog, [bob])
    await harness.accept(dialog, bob)
    await transfer(dialog, row.id, to=cid, by=bob)  # not a responsible change on this line
    assert (await harness.row(dialog)).operator_id == cid
    assert await responsibles(harness, row) == (ann, ann)
    assert await owner_rows(harness, row.id) == 0  # the built-in CRM: nothing to tell


async def test_a_reply_without_an_accept_makes_the_first_owner_too(harness: Harness) -> None:
    ann, bob = await harness.operators(2)
    channel = await harness.line([ann, bob], {}, **STRICTLY)
    dialog = await harness.client_writes(channel, "first-acceptor-reply", "Hi", name="Carol")
    row = await tracked(harness, dialog)
    await harness.offered(dialog, [ann])

    await harness.reply(dialog, ann)  # answers straight away, which accepts it

    assert await responsibles(harness, row) == (ann, ann)


async def test_a_later_dialog_accepted_by_another_keeps_the_clients_responsible(
    harness: Harness,
) -> None:
    ann, bob = await harness.operators(2)
    channel = await harness.line([ann, bob], {"rating_wait": 0}, **STRICTLY)
    first = await harness.client_writes(channel, "first-acceptor-4", "Hi")
    row = await tracked(harness, first)
    await harness.offered(first, [ann])
    await harness.accept(first, ann)
    await harness.closed_for_good(first, ann, row.id)
    await harness.update_operator(ann, presence="offline")

    again = await harness.client_writes(channel, "first-acceptor-4", "Me again")
    second = await tracked(harness, again, after=row)
    assert second.client_known  # a known client: no lead of its own
    await harness.offered(again, [bob])  # ann is away: the queue
    await harness.accept(again, bob)  # the first accept of this dialog
    assert await responsibles(harness, second) == (None, ann)


async def test_an_interception_before_any_accept_makes_the_first_owner(harness: Harness) -> None:
    ann, sue, bob = await harness.operators(3)
    settings = {"crm": {"transfer_changes_responsible": False}}
    channel = await harness.line([ann], settings, handover_after=3600)
    dialog = await harness.client_writes(channel, "first-acceptor-5", "Hi")
    row = await tracked(harness, dialog)
    await harness.offered(dialog, [ann])

    await transfer(dialog, row.id, to=sue)  # a supervisor takes it for sue before ann does
    assert await responsibles(harness, row) == (sue, sue)
    await transfer(dialog, row.id, to=bob, by=sue)  # sue owned it first: she stays
    assert await responsibles(harness, row) == (sue, sue)


async def test_a_transfer_before_any_accept_makes_the_first_owner_and_may_move_the_lead(
    harness: Harness,
) -> None:
    ann, sue, bob = await harness.operators(3)
    channel = await harness.line([ann], handover_after=3600)  # transfers move the lead
    dialog = await harness.client_writes(channel, "first-acceptor-6", "Hi")
    row = await tracked(harness, dialog)
    await harness.offered(dialog, [ann])

    await transfer(dialog, row.id, to=sue)
    assert await responsibles(harness, row) == (sue, sue)
    await transfer(dialog, row.id, to=bob, by=sue)  # the lead moves, the client stays sue's
    assert await responsibles(harness, row) == (bob, sue)


async def test_a_web_chat_visitor_goes_back_to_their_operator_and_still_gets_a_lead_later(
    harness: Harness,
) -> None:
    bob, ann = await harness.operators(2)
    api = await harness.line([bob, ann], {"rating_wait": 0}, **STRICTLY)
    webchat = await harness.channel(api.line_id, "webchat")
    first = await harness.client_writes(webchat, "visitor-fa-7", "Just looking")
    row = await tracked(harness, first)
    await harness.offered(first, [bob])
    await harness.skip(first, bob)
    await harness.offered(first, [ann])
    await harness.accept(first, ann)
    assert await responsibles(harness, row) == (None, ann)  # nothing to write back to: no lead
    await harness.closed_for_good(first, ann, row.id)

    again = await harness.client_writes(webchat, "visitor-fa-7", "Hello again")
    second = await tracked(harness, again, after=row)
    assert not second.client_known  # a responsible alone does not make a visitor known
    await harness.offered(again, [ann])
    await harness.client_writes(webchat, "visitor-fa-7", "Mail me: visitor.seven@example.com")
    await harness.dialog_row(second.id, lambda r: r.lead_requested)
    await harness.accept(again, ann)
    assert await responsibles(harness, second) == (ann, ann)


@pytest.fixture
async def portal(
    env: WorkflowEnvironment, sessions: async_sessionmaker[AsyncSession], task_queue: str
) -> AsyncIterator[tuple[Harness, FakeBitrix24]]:
    """A worker whose CRM is the fake Bitrix24, and the relay, as ``worker.serve`` runs them."""
    stop = asyncio.Event()
    async with serve_fake() as fake, httpx.AsyncClient(timeout=5.0) as http:
        crm = Bitrix24Crm(fake.webhook_url, http)
        async with build_worker(env.client, task_queue, sessions, crm=crm):
            harness = Harness(env, sessions, task_queue)
            relaying = asyncio.create_task(relay.run(sessions, env.client, task_queue, stop))
            try:
                yield harness, fake
            finally:
                stop.set()
                await relaying


async def external_lead(harness: Harness, dialog_id: int) -> Lead:
    """The dialog's lead once the worker has added it to Bitrix24 and here."""

    async def rows() -> list[Lead]:
        async with harness.sessions() as session:
            query = select(Lead).where(Lead.dialog_id == dialog_id, Lead.external_id.is_not(None))
            return list(await session.scalars(query))

    (lead,) = await harness.until(rows, 1)
    return lead


async def assigned(fake: FakeBitrix24, external_id: str, user_id: int) -> None:
    """Bitrix24's lead names ``user_id`` responsible, soon (the worker tells it)."""
    deadline = asyncio.get_running_loop().time() + 10.0
    while fake.leads[external_id]["ASSIGNED_BY_ID"] != str(user_id):
        assert asyncio.get_running_loop().time() < deadline, fake.leads[external_id]
        await asyncio.sleep(0.02)


async def test_bitrix24_is_told_who_accepted_the_lead_it_made_first(
    portal: tuple[Harness, FakeBitrix24],
) -> None:
    harness, fake = portal
    ann, bob = await harness.operators(2)
    channel = await harness.line([ann, bob], **STRICTLY)
    dialog = await harness.client_writes(channel, "first-acceptor-8", "Hi", phone="+14155557008")
    row = await tracked(harness, dialog)
    lead = await external_lead(harness, row.id)  # added before anyone accepted
    assert lead.external_id is not None and lead.responsible_id is None
    assert fake.leads[lead.external_id]["ASSIGNED_BY_ID"] == "1"  # nobody given: the webhook's

    await harness.offered(dialog, [ann])
    await harness.accept(dialog, ann)
    await assigned(fake, lead.external_id, ann)
    assert await responsibles(harness, row) == (ann, ann)
    assert await owner_rows(harness, row.id) == 1

    await harness.skip(dialog, ann)
    await harness.offered(dialog, [bob])
    await harness.accept(dialog, bob)  # a later accept: nothing to tell
    assert await owner_rows(harness, row.id) == 1
    assert fake.leads[lead.external_id]["ASSIGNED_BY_ID"] == str(ann)


async def test_a_bitrix24_lead_added_after_the_first_accept_is_added_with_its_responsible(
    portal: tuple[Harness, FakeBitrix24],
) -> None:
    harness, fake = portal
    fake.outage = True  # the lead waits for the portal
    ann, bob = await harness.operators(2)
    channel = await harness.line([ann, bob], **STRICTLY)
    dialog = await harness.client_writes(channel, "first-acceptor-9", "Hi", phone="+14155557009")
    row = await tracked(harness, dialog)
    await harness.offered(dialog, [ann])
    await harness.accept(dialog, ann)
    await harness.skip(dialog, ann)  # nobody owns the dialog when the lead is added
    await harness.offered(dialog, [bob])
    assert (await harness.row(dialog)).operator_id is None

    fake.outage = False  # the portal is back; the retry's backoff is skipped
    task = CrmTask(kind="create_lead", dialog_id=row.id, request_id=0)
    lead_run = harness.env.client.get_workflow_handle_for(CrmSyncWorkflow.run, workflow_id(task))
    async with harness.env.time_skipping_unlocked():  # type: ignore[attr-defined]
        await asyncio.wait_for(lead_run.result(), timeout=30.0)
    lead = await external_lead(harness, row.id)
    assert lead.external_id is not None and lead.responsible_id == ann
    assert fake.leads[lead.external_id]["ASSIGNED_BY_ID"] == str(ann)
    assert "crm.lead.update" not in fake.calls  # added with it: nothing to push after
