"""The chat tracker on SQLite and PostgreSQL: one contact per person across chats, no merges
on what a message says, and when a dialog owes a lead. Driven through the activity, as the
dialog workflow calls it."""

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from activities.chat_tracker import ChatTrackerActivities
from core.crm.models import Contact, ContactIdentity
from core.db import create_engine, session_factory
from core.line_settings import LineSettings
from core.models import Channel, Chat, Dialog, Line, Message, Outbox, utcnow
from tests.conftest import empty_tables
from workflows.models import ClientTurn, Tracked

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    engine = create_engine(database_url)
    factory = session_factory(engine)
    await empty_tables(factory)
    yield factory
    await engine.dispose()


async def add_channel(sessions: Sessions, channel_type: str, **crm: Any) -> Channel:
    """A new line with these CRM settings and one channel of this type."""
    async with sessions() as session, session.begin():
        line = Line(settings=LineSettings.model_validate({"crm": crm}).dump())
        session.add(line)
        await session.flush()
        channel = Channel(line_id=line.id, type=channel_type, secret="secret")
        session.add(channel)
    return channel


async def open_dialog(
    sessions: Sessions, channel: Channel, external_id: str, **chat_fields: str
) -> int:
    """A new dialog in the chat of ``external_id`` (made with these fields if it is new)."""
    async with sessions() as session, session.begin():
        chat = await session.scalar(
            select(Chat).where(Chat.channel_id == channel.id, Chat.external_id == external_id)
        )
        if chat is None:
            chat = Chat(channel_id=channel.id, line_id=channel.line_id, external_id=external_id)
            session.add(chat)
        for field, value in chat_fields.items():
            setattr(chat, field, value)
        await session.flush()
        dialog = Dialog(
            line_id=channel.line_id, chat_id=chat.id, channel_type=channel.type, status="new"
        )
        session.add(dialog)
    return dialog.id


async def say(sessions: Sessions, dialog_id: int, *texts: str) -> list[int]:
    async with sessions() as session, session.begin():
        dialog = await session.get(Dialog, dialog_id)
        assert dialog is not None
        messages = [
            Message(
                chat_id=dialog.chat_id,
                dialog_id=dialog_id,
                author="client",
                external_id=f"m-{dialog_id}-{i}-{text}",
                text=text,
            )
            for i, text in enumerate(texts)
        ]
        session.add_all(messages)
    return [m.id for m in messages]


async def track(
    sessions: Sessions, dialog_id: int, *texts: str, first: bool = False, ids: Sequence[int] = ()
) -> Tracked:
    """The client writes ``texts`` (or the messages ``ids`` are tracked again)."""
    message_ids = list(ids) or await say(sessions, dialog_id, *texts)
    turn = ClientTurn(
        dialog_id=dialog_id, message_ids=message_ids, first=first, off_hours_sent=False, at=utcnow()
    )
    return await ChatTrackerActivities(sessions, "US").track(turn)


async def get(sessions: Sessions, model: Any, row_id: int) -> Any:
    async with sessions() as session:
        return await session.get(model, row_id)


async def identities(sessions: Sessions, contact_id: int) -> set[tuple[str, str]]:
    async with sessions() as session:
        rows = await session.execute(
            select(ContactIdentity.kind, ContactIdentity.value).where(
                ContactIdentity.contact_id == contact_id
            )
        )
        return {(kind, value) for kind, value in rows}


async def lead_rows(sessions: Sessions, dialog_id: int | None = None) -> int:
    async with sessions() as session:
        query = select(func.count()).select_from(Outbox).where(Outbox.kind == "lead")
        if dialog_id is not None:
            query = query.where(Outbox.dialog_id == dialog_id)
        return await session.scalar(query) or 0


async def count(sessions: Sessions, model: Any) -> int:
    async with sessions() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


async def test_two_chats_on_two_channels_with_one_phone_are_one_contact(sessions: Sessions):
    telegram = await add_channel(sessions, "telegram")
    api = await add_channel(sessions, "api")  # another line
    first = await open_dialog(sessions, telegram, "tg-1", name="Ann", phone="+1 650 253 0000")
    tracked = await track(sessions, first, "Hello", first=True)
    assert tracked.contact_id is not None
    assert (tracked.client_known, tracked.lead_requested) == (False, True)  # a new messenger client

    second = await open_dialog(sessions, api, "api-7")
    again = await track(sessions, second, "Hi, it's me, (650) 253-0000", first=True)
    assert again == Tracked(contact_id=tracked.contact_id, client_known=True, lead_requested=False)
    assert await identities(sessions, tracked.contact_id) == {
        ("channel", f"{telegram.id}:tg-1"),
        ("channel", f"{api.id}:api-7"),
        ("phone", "+16502530000"),
    }
    for dialog_id in (first, second):
        dialog = await get(sessions, Dialog, dialog_id)
        chat = await get(sessions, Chat, dialog.chat_id)
        assert dialog.contact_id == chat.contact_id == tracked.contact_id
    assert (await get(sessions, Contact, tracked.contact_id)).name == "Ann"
    assert await count(sessions, Contact) == 1
    assert (await lead_rows(sessions, first), await lead_rows(sessions, second)) == (1, 0)


async def test_a_web_chat_visitor_is_owed_a_lead_once_they_leave_an_email(sessions: Sessions):
    webchat = await add_channel(sessions, "webchat")
    dialog_id = await open_dialog(sessions, webchat, "visitor-1")
    tracked = await track(sessions, dialog_id, "Hello, how much is it?", first=True)
    assert tracked.contact_id is not None
    assert (tracked.client_known, tracked.lead_requested) == (False, False)
    assert await lead_rows(sessions) == 0

    no_contact = await track(sessions, dialog_id, "Call me maybe")
    assert no_contact.lead_requested is False
    owed = await track(sessions, dialog_id, "Write to ANN@Example.com please")
    assert owed == Tracked(contact_id=tracked.contact_id, client_known=False, lead_requested=True)
    assert ("email", "ann@example.com") in await identities(sessions, tracked.contact_id)
    assert (await get(sessions, Dialog, dialog_id)).lead_requested is True
    assert await lead_rows(sessions, dialog_id) == 1


async def test_a_returning_visitor_who_left_nothing_is_still_new_and_owed_a_lead_later(
    sessions: Sessions,
):
    webchat = await add_channel(sessions, "webchat")
    earlier = await open_dialog(sessions, webchat, "visitor-2")
    assert (await track(sessions, earlier, "Just looking", first=True)).lead_requested is False

    later = await open_dialog(sessions, webchat, "visitor-2")  # the same chat, a new session
    tracked = await track(sessions, later, "Hello again", first=True)
    assert (tracked.client_known, tracked.lead_requested) == (False, False)
    owed = await track(sessions, later, "OK, mail me: visitor.two@example.com")
    assert (owed.client_known, owed.lead_requested) == (False, True)
    assert await lead_rows(sessions, later) == 1


async def test_a_known_client_is_owed_no_lead(sessions: Sessions):
    telegram = await add_channel(sessions, "telegram")
    earlier = await open_dialog(sessions, telegram, "tg-1")
    assert (await track(sessions, earlier, "Hello", first=True)).lead_requested is True

    later = await open_dialog(sessions, telegram, "tg-1")  # the same chat, a new session
    tracked = await track(sessions, later, "Hello again", first=True)
    assert (tracked.client_known, tracked.lead_requested) == (True, False)
    assert await lead_rows(sessions, later) == 0
    assert (await get(sessions, Dialog, later)).client_known is True


async def test_a_lead_is_owed_once_however_often_a_turn_is_tracked(sessions: Sessions):
    telegram = await add_channel(sessions, "telegram")
    dialog_id = await open_dialog(sessions, telegram, "tg-1", email="bob@example.org")
    ids = await say(sessions, dialog_id, "Hello, +1 650 253 0000")
    once = await track(sessions, dialog_id, first=True, ids=ids)
    twice = await track(sessions, dialog_id, first=True, ids=ids)  # an activity retry
    assert once == twice
    assert (twice.client_known, twice.lead_requested) == (False, True)  # still not "known"
    await track(sessions, dialog_id, "and ann@example.com")
    assert await lead_rows(sessions, dialog_id) == 1
    assert await count(sessions, Contact) == 1
    assert await count(sessions, ContactIdentity) == 4


async def test_without_the_chat_tracker_only_the_chat_itself_is_recognised(sessions: Sessions):
    telegram = await add_channel(sessions, "telegram", chat_tracker=False)
    webchat = await add_channel(sessions, "webchat", chat_tracker=False)
    first = await open_dialog(sessions, telegram, "tg-1", phone="+16502530000")
    one = await track(sessions, first, "my number is +1 650 253 0000", first=True)
    assert one.contact_id is not None
    assert await identities(sessions, one.contact_id) == {("channel", f"{telegram.id}:tg-1")}

    second = await open_dialog(sessions, webchat, "visitor-1", phone="+16502530000")
    two = await track(sessions, second, "+1 650 253 0000, ann@example.com", first=True)
    assert two.contact_id not in (None, one.contact_id)
    assert (two.client_known, two.lead_requested) == (False, False)  # nothing to write back to
    assert await count(sessions, Contact) == 2


async def test_crm_off_leaves_the_dialog_alone_and_create_none_owes_no_lead(sessions: Sessions):
    off = await add_channel(sessions, "telegram", enabled=False)
    dialog_id = await open_dialog(sessions, off, "tg-1", phone="+16502530000")
    assert await track(sessions, dialog_id, "hi", first=True) == Tracked()
    assert await count(sessions, Contact) == 0

    manual = await add_channel(sessions, "telegram", create="none")
    dialog_id = await open_dialog(sessions, manual, "tg-2")
    tracked = await track(sessions, dialog_id, "hi", first=True)
    assert tracked.contact_id is not None and tracked.lead_requested is False
    assert await lead_rows(sessions) == 0


async def test_a_message_naming_known_clients_phones_merges_nobody(sessions: Sessions):
    telegram = await add_channel(sessions, "telegram")
    webchat = await add_channel(sessions, "webchat")
    victims: list[int] = []
    for chat, phone in (("tg-1", "+16502530000"), ("tg-2", "+16502530001")):
        victim_dialog = await open_dialog(sessions, telegram, chat, phone=phone)
        victim = (await track(sessions, victim_dialog, "Hello", first=True)).contact_id
        assert victim is not None
        victims.append(victim)
    attacker_dialog = await open_dialog(sessions, webchat, "visitor-1", name="Mallory")
    attacker = (await track(sessions, attacker_dialog, "Hi", first=True)).contact_id
    assert attacker is not None and attacker not in victims

    tracked = await track(sessions, attacker_dialog, "call 650 253 0000 or 650-253-0001")

    assert tracked.contact_id == attacker  # still their own contact
    for victim, chat, phone in zip(
        victims, ("tg-1", "tg-2"), ("+16502530000", "+16502530001"), strict=True
    ):
        assert (await get(sessions, Contact, victim)).merged_into_id is None
        assert await identities(sessions, victim) == {
            ("channel", f"{telegram.id}:{chat}"),
            ("phone", phone),
        }
    assert await identities(sessions, attacker) == {("channel", f"{webchat.id}:visitor-1")}


async def test_a_new_chat_links_to_one_existing_contact_the_channel_vouches_for_first(
    sessions: Sessions,
):
    telegram = await add_channel(sessions, "telegram")
    api = await add_channel(sessions, "api")
    by_phone = await open_dialog(sessions, telegram, "tg-1", phone="+16502530000")
    phone_owner = (await track(sessions, by_phone, "Hello", first=True)).contact_id
    by_email = await open_dialog(sessions, telegram, "tg-2", email="ann@example.com")
    email_owner = (await track(sessions, by_email, "Hello", first=True)).contact_id
    assert phone_owner is not None and email_owner is not None

    # The channel gives the email; the message names the other contact's phone.
    new_chat = await open_dialog(sessions, api, "api-1", email="Ann@Example.com")
    tracked = await track(sessions, new_chat, "my phone is 650 253 0000", first=True)

    assert tracked.contact_id == email_owner
    assert tracked.client_known is True  # that contact has an email: no lead owed
    assert (await get(sessions, Contact, phone_owner)).merged_into_id is None
    assert ("phone", "+16502530000") not in await identities(sessions, email_owner)


async def test_two_new_chats_of_one_client_at_once_end_on_one_contact(sessions: Sessions):
    telegram = await add_channel(sessions, "telegram")
    api = await add_channel(sessions, "api")
    dialogs = [
        await open_dialog(sessions, telegram, "tg-1"),
        await open_dialog(sessions, api, "api-1"),
    ]
    texts = [await say(sessions, d, "I'm ann@example.com") for d in dialogs]
    results = await asyncio.gather(
        *(track(sessions, d, first=True, ids=ids) for d, ids in zip(dialogs, texts, strict=True))
    )
    assert results[0].contact_id == results[1].contact_id is not None
    assert sorted(r.client_known for r in results) == [False, True]  # one made it, one found it
    assert await count(sessions, Contact) == 1
    assert await lead_rows(sessions) == 1
