"""The CRM side of dialogs on the time-skipping server: the chat tracker recognising clients
across channels, leads created once, forwarding to the responsible operator, and a transfer
moving the responsibility for the lead its dialog created."""

from typing import Any

from sqlalchemy import select
from temporalio.client import WorkflowHandle

from core.crm.models import Contact, ContactIdentity, Lead
from core.models import Chat, Dialog, Outbox
from tests.workflows.harness import Harness
from workflows.models import Transfer

PHONE = "+16502530000"


async def contact_with_phone(harness: Harness, phone: str, responsible: int | None) -> int:
    async with harness.sessions() as session, session.begin():
        contact = Contact(name="Known client", responsible_id=responsible)
        session.add(contact)
        await session.flush()
        session.add(ContactIdentity(contact_id=contact.id, kind="phone", value=phone))
        return contact.id


async def leads_of(harness: Harness, contact_id: int) -> list[Lead]:
    async with harness.sessions() as session:
        return list(await session.scalars(select(Lead).where(Lead.contact_id == contact_id)))


async def tracked_row(harness: Harness, handle: WorkflowHandle[Any, Any]) -> Dialog:
    """The dialog row once the chat tracker has linked it to a contact."""
    await harness.eventually(handle, lambda s: s.tracked)
    row = await harness.row(handle)
    assert row.contact_id is not None
    return row


async def test_a_client_writing_from_two_channels_with_one_phone_is_one_contact_with_one_lead(
    harness: Harness,
) -> None:
    (agent,) = await harness.operators(1)
    api = await harness.line([agent], handover_after=3600)
    telegram = await harness.channel(api.line_id, "telegram")
    first = await harness.client_writes(api, "crm-1", "Hi", phone="+1 650-253-0000")
    row = await tracked_row(harness, first)
    assert not row.client_known
    await harness.offered(first, [agent])
    await harness.accept(first, agent)
    await harness.close(first, agent)

    second = await harness.client_writes(
        telegram, "tg-crm-1", "It's me again, call me on (650) 253 0000"
    )
    second_row = await tracked_row(harness, second)
    assert second_row.contact_id == row.contact_id
    assert second_row.client_known  # recognised by the phone in the text: no second lead
    assert not second_row.lead_requested

    async with harness.sessions() as session:
        chats = await session.scalars(select(Chat).where(Chat.contact_id == row.contact_id))
        assert sorted(c.channel_id for c in chats) == sorted([api.id, telegram.id])
        identities = await session.scalars(
            select(ContactIdentity.value).where(
                ContactIdentity.contact_id == row.contact_id, ContactIdentity.kind == "phone"
            )
        )
        assert list(identities) == [PHONE]
    lead = await harness.until(lambda: leads_of(harness, row.contact_id or 0), 1)
    assert [(x.dialog_id, x.source) for x in lead] == [(row.id, "api")]


async def test_a_web_chat_visitor_gets_a_lead_only_once_an_email_is_written(
    harness: Harness,
) -> None:
    (agent,) = await harness.operators(1)
    api = await harness.line([agent], {"crm": {"lead_source": "web site"}}, handover_after=3600)
    webchat = await harness.channel(api.line_id, "webchat")
    dialog = await harness.client_writes(webchat, "visitor-1", "Hello, how much is it?")
    row = await tracked_row(harness, dialog)
    await harness.client_writes(webchat, "visitor-1", "What are your opening hours?")
    await harness.eventually(dialog, lambda s: s.client_messages == 2)
    await harness.sleep(60)
    assert not (await harness.row(dialog)).lead_requested
    assert await leads_of(harness, row.contact_id or 0) == []

    await harness.client_writes(webchat, "visitor-1", "Write to me: Visitor.One@Example.com")
    (lead,) = await harness.until(lambda: leads_of(harness, row.contact_id or 0), 1)
    assert (lead.dialog_id, lead.source) == (row.id, "web site")


async def test_a_known_clients_dialog_goes_to_their_responsible_even_outside_the_queue(
    harness: Harness,
) -> None:
    (agent,) = await harness.operators(1)
    (responsible,) = await harness.operators(1)
    await contact_with_phone(harness, "+16502530005", responsible)
    channel = await harness.line([agent], handover_after=60)
    dialog = await harness.client_writes(channel, "crm-3", "Hi", phone="+16502530005")
    await harness.offered(dialog, [responsible])
    state = await harness.accept(dialog, responsible)
    assert state.operator_id == responsible
    await harness.update_operator(agent, presence="offline")
    await harness.operator_changes(agent, presence="online")  # the queue is rebalanced
    assert (await harness.row(dialog)).operator_id == responsible


async def test_the_responsible_unavailable_or_too_slow_means_the_normal_queue(
    harness: Harness,
) -> None:
    (agent,) = await harness.operators(1)
    (responsible,) = await harness.operators(1, presence="offline")
    await contact_with_phone(harness, "+16502530001", responsible)
    channel = await harness.line([agent], {"rating_wait": 0}, handover_after=60)
    offline = await harness.client_writes(channel, "crm-4", "Hi", phone="+16502530001")
    await tracked_row(harness, offline)
    await harness.offered(offline, [agent])

    await harness.update_operator(responsible, presence="online")
    await harness.accept(offline, agent)
    await harness.close(offline, agent)
    await harness.result(offline)
    slow = await harness.client_writes(channel, "crm-4", "Me again")
    await harness.offered(slow, [responsible])
    await harness.sleep(61)  # the handover: on to the line's queue
    await harness.offered(slow, [agent])


async def test_off_the_forward_setting_a_known_client_takes_the_queue(harness: Harness) -> None:
    (agent,) = await harness.operators(1)
    (responsible,) = await harness.operators(1)
    await contact_with_phone(harness, "+16502530002", responsible)
    channel = await harness.line(
        [agent], {"crm": {"forward_to_responsible": False}}, handover_after=60
    )
    dialog = await harness.client_writes(channel, "crm-5", "Hi", phone="+16502530002")
    await harness.offered(dialog, [agent])


async def test_a_transfer_moves_only_the_lead_its_dialog_created(harness: Harness) -> None:
    first, second, earlier_owner = await harness.operators(3)
    contact_id = await contact_with_phone(harness, "+16502530003", earlier_owner)
    async with harness.sessions() as session, session.begin():
        session.add(
            Lead(title="Earlier", source="api", responsible_id=earlier_owner, contact_id=contact_id)
        )
    channel = await harness.line([first], {"crm": {"create": "none"}}, handover_after=3600)
    dialog = await harness.client_writes(channel, "crm-6", "Hi", phone="+16502530003")
    await harness.offered(dialog, [earlier_owner])  # forwarded to the responsible first
    await harness.skip(dialog, earlier_owner)
    await harness.offered(dialog, [first])
    state = await harness.accept(dialog, first)
    async with harness.sessions() as session, session.begin():  # as POST .../crm/lead does
        row = await session.get(Dialog, state.dialog_id)
        assert row is not None
        row.lead_requested = True
        session.add(Outbox(kind="lead", dialog_id=row.id))
    await harness.until(lambda: leads_of(harness, contact_id), 2)

    await dialog.execute_update(
        "transfer",
        Transfer(dialog_id=state.dialog_id, operator_id=first, to_operator_id=second),
    )
    by_dialog = {lead.dialog_id: lead for lead in await leads_of(harness, contact_id)}
    assert by_dialog[state.dialog_id].responsible_id == second
    assert by_dialog[None].responsible_id == earlier_owner
    async with harness.sessions() as session:
        contact = await session.get(Contact, contact_id)
        assert contact is not None and contact.responsible_id == earlier_owner


async def test_removed_from_the_queue_an_operator_keeps_only_what_was_given_outside_it(
    harness: Harness,
) -> None:
    ann, bob = await harness.operators(2)
    channel = await harness.line([ann, bob], distribution="evenly", handover_after=3600)
    from_queue = await harness.client_writes(channel, "crm-7")
    await harness.offered(from_queue, [ann])
    await harness.accept(from_queue, ann)
    given = await harness.client_writes(channel, "crm-8")
    await harness.offered(given, [bob])
    state = await harness.accept(given, bob)
    await given.execute_update(
        "transfer", Transfer(dialog_id=state.dialog_id, operator_id=bob, to_operator_id=ann)
    )

    await harness.set_members(channel.line_id, [bob])
    assert (await harness.row(given)).operator_id == ann  # transferred to her: hers
    await harness.offered(from_queue, [bob])  # taken from the queue: back to it


async def test_a_responsible_outside_the_queue_who_goes_offline_loses_the_offer_at_once(
    harness: Harness,
) -> None:
    (agent,) = await harness.operators(1)
    (responsible,) = await harness.operators(1)
    await contact_with_phone(harness, "+16502530006", responsible)
    channel = await harness.line([agent], handover_after=3600)
    dialog = await harness.client_writes(channel, "crm-9", "Hi", phone="+16502530006")
    await harness.offered(dialog, [responsible])
    await harness.operator_changes(responsible, presence="offline")
    await harness.offered(dialog, [agent])
