"""CrmSyncWorkflow on the time-skipping server: one lead per dialog with the built-in CRM
and with Bitrix24 (the fake portal), through outages (a dialog routed meanwhile), for known
clients, and reassigned."""

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from itertools import count
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

import relay
from activities.crm import CrmActivities
from core.crm.backends import BuiltinCrm, LeadDraft
from core.crm.bitrix24 import Bitrix24Crm, Bitrix24Error
from core.crm.models import Contact, ContactIdentity, Lead
from core.events.models import Event
from core.models import Chat, Dialog, Outbox
from tests.crm_fake.bitrix24 import FakeBitrix24, serve_fake
from tests.workflows.harness import Harness
from worker import build_worker
from workflows.crm_sync import CrmSyncWorkflow, workflow_id
from workflows.models import CrmOutcome, CrmTask

_numbers = count(1)


@dataclass
class Seeded:
    dialog_id: int
    contact_id: int
    phone: str


@dataclass
class Portal:
    """A worker whose CRM is the fake Bitrix24, the fake itself and the adapter."""

    harness: Harness
    fake: FakeBitrix24
    crm: Bitrix24Crm


@pytest.fixture
async def portal(
    env: WorkflowEnvironment, sessions: async_sessionmaker[AsyncSession], task_queue: str
) -> AsyncIterator[Portal]:
    async with serve_fake() as fake, httpx.AsyncClient(timeout=5.0) as http:
        crm = Bitrix24Crm(fake.webhook_url, http)
        async with build_worker(env.client, task_queue, sessions, crm=crm):
            yield Portal(Harness(env, sessions, task_queue), fake, crm)


@pytest.fixture
async def routed_portal(portal: Portal) -> AsyncIterator[Portal]:
    """The fake Bitrix24's worker with the relay running too, as ``worker.serve`` runs it:
    clients' messages reach dialog workflows and owed leads start their ``CrmSyncWorkflow``."""
    h, stop = portal.harness, asyncio.Event()
    relaying = asyncio.create_task(relay.run(h.sessions, h.env.client, h.task_queue, stop))
    try:
        yield portal
    finally:
        stop.set()
        await relaying


async def seed(
    h: Harness,
    operator: int | None,
    responsible: int | None = None,
    settings: dict[str, Any] | None = None,
) -> Seeded:
    """A telegram client's dialog (held by ``operator``) on a contact known by a phone."""
    n = next(_numbers)
    channel = await h.line([operator] if operator else [], settings)
    phone = f"+1415555{n:04d}"
    async with h.sessions() as session, session.begin():
        contact = Contact(name="Bob", responsible_id=responsible)
        session.add(contact)
        await session.flush()
        chat = Chat(
            channel_id=channel.id,
            line_id=channel.line_id,
            external_id=f"tg-{n}",
            name="Bob",
            contact_id=contact.id,
        )
        session.add(chat)
        session.add_all(
            [
                ContactIdentity(contact_id=contact.id, kind="phone", value=phone),
                ContactIdentity(
                    contact_id=contact.id, kind="channel", value=f"{channel.id}:tg-{n}"
                ),
            ]
        )
        await session.flush()
        dialog = Dialog(
            line_id=channel.line_id,
            chat_id=chat.id,
            channel_type="telegram",
            status="accepted",
            operator_id=operator,
            contact_id=contact.id,
            lead_requested=True,
        )
        session.add(dialog)
        await session.flush()
        return Seeded(dialog.id, contact.id, phone)


def create(dialog_id: int) -> CrmTask:
    return CrmTask(kind="create_lead", dialog_id=dialog_id, request_id=next(_numbers))


async def run(h: Harness, task: CrmTask) -> CrmOutcome:
    """Run the task to its end; a run whose activity keeps failing fails after an hour of
    workflow time (a few seconds: the server skips the retries' backoff)."""
    result: CrmOutcome = await h.env.client.execute_workflow(
        CrmSyncWorkflow.run,
        task,
        id=workflow_id(task),
        task_queue=h.task_queue,
        execution_timeout=timedelta(hours=1),
    )
    return result


async def leads_of(h: Harness, dialog_id: int) -> list[Lead]:
    async with h.sessions() as session:
        return list(await session.scalars(select(Lead).where(Lead.dialog_id == dialog_id)))


async def lead_events(h: Harness, dialog_id: int) -> int:
    async with h.sessions() as session:
        query = select(func.count(Event.id)).where(
            Event.type == "lead.created", Event.dialog_id == dialog_id
        )
        return await session.scalar(query) or 0


def test_workflow_ids():
    assert workflow_id(CrmTask(kind="create_lead", dialog_id=4, request_id=9)) == "crm-lead-4"
    reassign = CrmTask(kind="reassign_lead", dialog_id=4, request_id=9)
    assert workflow_id(reassign) == "crm-lead-owner-9"


async def test_builtin_lead_is_created_once(harness: Harness):
    (operator,) = await harness.operators(1)
    seeded = await seed(harness, operator)
    task = create(seeded.dialog_id)

    first = await run(harness, task)
    again = await run(harness, task)  # the same workflow id, started after the first ended
    rerun = await CrmActivities(harness.sessions, BuiltinCrm()).create_lead(task)

    assert first.lead_id is not None and first.external_id is None
    assert first == again == rerun
    (lead,) = await leads_of(harness, seeded.dialog_id)
    assert (lead.id, lead.external_id, lead.responsible_id) == (first.lead_id, None, operator)
    assert (lead.contact_id, lead.source) == (seeded.contact_id, "telegram")
    assert lead.title == f"Bob — telegram dialog {seeded.dialog_id}"
    assert await lead_events(harness, seeded.dialog_id) == 1
    reassign = CrmTask(kind="reassign_lead", dialog_id=seeded.dialog_id, request_id=1)
    assert await run(harness, reassign) == CrmOutcome(lead_id=lead.id)  # nothing external


async def test_the_relay_starts_the_run_for_a_committed_lead_row(harness: Harness):
    (operator,) = await harness.operators(1)
    seeded = await seed(harness, operator)
    async with harness.sessions() as session, session.begin():
        session.add(Outbox(kind="lead", dialog_id=seeded.dialog_id))

    handle = harness.env.client.get_workflow_handle_for(
        CrmSyncWorkflow.run, workflow_id(create(seeded.dialog_id))
    )
    deadline = asyncio.get_running_loop().time() + 10.0
    while (await leads_of(harness, seeded.dialog_id)) == []:
        assert asyncio.get_running_loop().time() < deadline, "the relay started no lead run"
        await asyncio.sleep(0.02)
    outcome: CrmOutcome = await handle.result()
    (lead,) = await leads_of(harness, seeded.dialog_id)
    assert outcome.lead_id == lead.id


class _Racing(BuiltinCrm):
    """Holds both runs at the CRM call, so both insert the lead at once."""

    def __init__(self) -> None:
        self.barrier = asyncio.Barrier(2)

    async def create_lead(self, draft: LeadDraft) -> str | None:
        await self.barrier.wait()
        return None


async def test_two_runs_at_once_make_one_lead(harness: Harness):
    (operator,) = await harness.operators(1)
    seeded = await seed(
        harness, None, responsible=operator, settings={"crm": {"lead_source": "Ads"}}
    )
    activities = CrmActivities(harness.sessions, _Racing())
    task = create(seeded.dialog_id)

    one, two = await asyncio.gather(activities.create_lead(task), activities.create_lead(task))

    assert one == two and one.lead_id is not None
    (lead,) = await leads_of(harness, seeded.dialog_id)
    assert (lead.responsible_id, lead.source) == (operator, "Ads")  # the contact's responsible
    assert await lead_events(harness, seeded.dialog_id) == 1


async def test_bitrix24_outage_delays_the_lead_until_it_recovers(portal: Portal):
    h, fake = portal.harness, portal.fake
    (operator,) = await h.operators(1)
    seeded = await seed(h, operator)
    fake.fail_next = 4  # four calls answer 503, then the portal is back ...
    fake.lose_reply = {"crm.lead.add"}  # ... and the answer to the lead's creation is lost

    outcome = await run(h, create(seeded.dialog_id))

    assert fake.failed == 5
    (external_id,) = fake.leads  # exactly one lead in Bitrix24
    (lead,) = await leads_of(h, seeded.dialog_id)
    assert lead.external_id == external_id == outcome.external_id
    assert outcome == CrmOutcome(lead_id=lead.id, external_id=external_id, responsible_pushed=True)
    portal_lead = fake.leads[external_id]
    assert portal_lead["ORIGIN_ID"] == f"openlines-dialog-{seeded.dialog_id}"
    assert portal_lead["ASSIGNED_BY_ID"] == str(operator)
    assert portal_lead["PHONE"] == [{"VALUE": seeded.phone, "VALUE_TYPE": "WORK"}]
    assert await lead_events(h, seeded.dialog_id) == 1


async def soon(check: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Wait (in real time, workflow time standing still) until ``check`` holds."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"never: {what}"
        await asyncio.sleep(0.02)


async def test_a_dialog_is_routed_while_bitrix24_is_down_and_its_lead_follows(
    routed_portal: Portal,
) -> None:
    h, fake = routed_portal.harness, routed_portal.fake
    fake.outage = True  # every call answers 503 until the portal is back
    (operator,) = await h.operators(1)
    channel = await h.line([operator], {"crm": {"create": "lead"}}, handover_after=3600)
    n = next(_numbers)
    phone = f"+1415556{n:04d}"
    dialog = await h.client_writes(channel, f"outage-{n}", "Hi, how much is it?", phone=phone)

    offered = await h.offered(dialog, [operator])  # routed with the portal down
    row = await h.row(dialog)
    assert row.lead_requested and not row.client_known  # a new client: a lead is due
    lead_run = h.env.client.get_workflow_handle_for(
        CrmSyncWorkflow.run, workflow_id(create(offered.dialog_id))
    )
    await soon(lambda: fake.failed >= 2, "the lead's run tried the portal and tried again")
    accepted = await h.accept(dialog, operator)
    assert (accepted.status, accepted.operator_id) == ("accepted", operator)
    replied = await h.reply(dialog, operator)
    assert (replied.status, replied.answered) == ("operator_replied", True)
    assert (await h.row_shows(dialog, "operator_replied")).operator_id == operator
    assert fake.leads == {} and await leads_of(h, offered.dialog_id) == []
    assert await lead_events(h, offered.dialog_id) == 0
    assert (await lead_run.describe()).status == WorkflowExecutionStatus.RUNNING
    assert "crm.lead.add" not in fake.calls  # each attempt failed at its first call

    fake.outage = False  # the portal is back; the retry's backoff is skipped
    async with h.env.time_skipping_unlocked():  # type: ignore[attr-defined]
        outcome: CrmOutcome = await asyncio.wait_for(lead_run.result(), timeout=30.0)

    (external_id,) = fake.leads  # exactly one lead in Bitrix24 ...
    (lead,) = await leads_of(h, offered.dialog_id)  # ... and one here, pointing at it
    assert outcome == CrmOutcome(lead_id=lead.id, external_id=external_id, responsible_pushed=True)
    assert (lead.external_id, lead.responsible_id) == (external_id, operator)
    assert fake.calls.count("crm.lead.add") == 1
    portal_lead = fake.leads[external_id]
    assert portal_lead["ORIGIN_ID"] == f"openlines-dialog-{offered.dialog_id}"
    assert portal_lead["ASSIGNED_BY_ID"] == str(operator)
    assert portal_lead["PHONE"] == [{"VALUE": phone, "VALUE_TYPE": "WORK"}]
    assert await lead_events(h, offered.dialog_id) == 1
    assert (await h.row(dialog)).operator_id == operator


async def test_client_known_to_bitrix24_gets_no_lead_and_their_responsible(portal: Portal):
    h, fake = portal.harness, portal.fake
    operator, manager = await h.operators(2)
    seeded = await seed(h, operator)
    fake.seed("CONTACT", phones=[seeded.phone], responsible=manager)

    outcome = await run(h, create(seeded.dialog_id))

    assert outcome == CrmOutcome(client_known=True)
    assert await leads_of(h, seeded.dialog_id) == []
    assert fake.leads == {}
    async with h.sessions() as session:
        contact = await session.get(Contact, seeded.contact_id)
        dialog = await session.get(Dialog, seeded.dialog_id)
    assert contact is not None and contact.responsible_id == manager
    assert dialog is not None and dialog.client_known


async def test_a_responsible_who_is_not_our_operator_is_not_copied(portal: Portal):
    h, fake = portal.harness, portal.fake
    (operator,) = await h.operators(1)
    seeded = await seed(h, operator, responsible=operator)
    fake.seed("LEAD", phones=[seeded.phone], responsible=987654)

    assert (await run(h, create(seeded.dialog_id))).client_known
    async with h.sessions() as session:
        contact = await session.get(Contact, seeded.contact_id)
    assert contact is not None and contact.responsible_id == operator


async def test_reassign_pushes_the_new_responsible(portal: Portal):
    h, fake = portal.harness, portal.fake
    first, second = await h.operators(2)
    seeded = await seed(h, first)
    created = await run(h, create(seeded.dialog_id))
    assert created.external_id is not None
    assert fake.leads[created.external_id]["ASSIGNED_BY_ID"] == str(first)
    async with h.sessions() as session, session.begin():  # a transfer moved the lead
        lead = await session.get(Lead, created.lead_id)
        assert lead is not None
        lead.responsible_id = second
    fake.fail_next = 2

    outcome = await run(h, CrmTask(kind="reassign_lead", dialog_id=seeded.dialog_id, request_id=77))

    assert outcome.responsible_pushed
    assert fake.leads[created.external_id]["ASSIGNED_BY_ID"] == str(second)
    assert len(fake.leads) == 1


async def test_a_lead_added_before_a_transfer_gets_the_new_responsible(portal: Portal):
    h, fake = portal.harness, portal.fake
    first, second = await h.operators(2)
    seeded = await seed(h, first)
    activities = CrmActivities(h.sessions, portal.crm)
    task = create(seeded.dialog_id)
    fake.lose_reply = {"crm.lead.add"}
    with pytest.raises(Bitrix24Error):  # added for ``first``, the answer lost
        await activities.create_lead(task)
    async with h.sessions() as session, session.begin():  # then the dialog changed hands
        dialog = await session.get(Dialog, seeded.dialog_id)
        assert dialog is not None
        dialog.operator_id = second

    outcome = await activities.create_lead(task)  # the retry

    (external_id,) = fake.leads
    assert outcome.external_id == external_id and outcome.responsible_pushed
    assert fake.leads[external_id]["ASSIGNED_BY_ID"] == str(second)
    (lead,) = await leads_of(h, seeded.dialog_id)
    assert lead.responsible_id == second
