"""The chat tracker: recognise the client behind a dialog and keep their chats on one contact.

``track`` is one transaction's worth of work; the caller owns the transaction. Its rules:

- Identities: always the chat's channel identity; with ``crm.chat_tracker`` also the chat's
  phone and email fields and the phones and emails written in the client's messages.
- Session start (the dialog has no contact yet): the chat's contact, or the contact any
  identity belongs to, is the client's; otherwise a new contact is made, named after the
  chat. The client is known when that contact already has something the CRM can act on: a
  responsible, a lead, a phone or email, or a messenger chat (a web-chat visitor who left
  nothing in an earlier session is not known, even with a responsible, and gets a lead once
  they do).
- Merging: identities of two contacts in one dialog mean one person. The older contact (the
  lower id) is kept; the other's identities, chats, dialogs and leads move to it, it keeps a
  ``merged_into_id`` pointer, and its name and responsible fill the kept one's gaps. A later
  message that merges the dialog's contact into an older one makes the client known.
- A lead is owed once per dialog (``lead_requested`` plus the lead row for the built-in CRM,
  or an outbox row ``lead`` for the worker to create it in an external one) when
  ``crm.create`` is ``lead``, the client is not known, and they can be written back to.

Races: two chats of one new person arriving at once may both add the same phone. On
PostgreSQL the second insert waits for the first transaction and then fails with an
``IntegrityError``; SQLite runs write transactions one at a time. This module does not
catch it: the caller rolls back and runs ``track`` again, which then finds the identity and
merges (``activities/chat_tracker.py`` does so). Contacts are locked in id order before
they change, so concurrent merges of the same contacts queue up; a deadlock among other
orders is broken by PostgreSQL and retried the same way.
"""

from sqlalchemy import Exists, exists, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from channels import registry
from core.crm import leads
from core.crm.identities import channel_identity, find_contacts, normalise_email, normalise_phone
from core.crm.models import Contact, ContactIdentity, Lead, live_contact
from core.line_settings import LineSettings
from core.models import Channel, Chat, Dialog, Outbox
from workflows.models import Tracked

Identity = tuple[str, str]  # (kind, value)


def client_identities(
    chat: Chat, settings: LineSettings, texts: list[str], default_region: str
) -> list[Identity]:
    """Who the client is, as far as this chat and these messages say."""
    found: list[Identity] = [("channel", channel_identity(chat.channel_id, chat.external_id))]
    if not settings.crm.chat_tracker:
        return found
    phones: list[str] = []
    emails: list[str] = []
    if chat.phone and (phone := normalise_phone(chat.phone, default_region)):
        phones.append(phone)
    if chat.email and (email := normalise_email(chat.email)):
        emails.append(email)
    for text in texts:
        in_text = find_contacts(text, default_region)
        phones += in_text[0]
        emails += in_text[1]
    found += [("phone", p) for p in phones] + [("email", e) for e in emails]
    return list(dict.fromkeys(found))


async def owners(session: AsyncSession, identities: list[Identity]) -> dict[Identity, int]:
    """The contact each of these identities belongs to, for those that belong to one."""
    if not identities:
        return {}
    rows = await session.execute(
        select(ContactIdentity.kind, ContactIdentity.value, ContactIdentity.contact_id).where(
            tuple_(ContactIdentity.kind, ContactIdentity.value).in_(identities)
        )
    )
    return {(kind, value): contact_id for kind, value, contact_id in rows}


async def merge(session: AsyncSession, kept: Contact, other: Contact) -> None:
    """Make ``other`` a part of ``kept``: its identities, chats, dialogs and leads move."""
    moving = (
        (ContactIdentity, ContactIdentity.contact_id),
        (Chat, Chat.contact_id),
        (Dialog, Dialog.contact_id),
        (Lead, Lead.contact_id),
    )
    for model, column in moving:
        await session.execute(
            update(model)
            .where(column == other.id)
            .values(contact_id=kept.id)
            .execution_options(synchronize_session="fetch")
        )
    # Contacts merged into ``other`` before now point at ``kept`` directly.
    await session.execute(
        update(Contact)
        .where(Contact.merged_into_id == other.id)
        .values(merged_into_id=kept.id)
        .execution_options(synchronize_session="fetch")
    )
    other.merged_into_id = kept.id
    if kept.name is None:
        kept.name = other.name
    if kept.responsible_id is None:
        kept.responsible_id = other.responsible_id


async def reachable(session: AsyncSession, dialog: Dialog, contact: Contact) -> bool:
    """The client can be written back to: a messenger chat (any channel but the web chat), or
    a phone or email on the contact."""
    if registry.traits(dialog.channel_type).writes_back:
        return True
    return bool(await session.scalar(select(_phone_or_email(contact) | _messenger_chat(contact))))


async def is_known(session: AsyncSession, dialog: Dialog, contact: Contact) -> bool:
    """The contact has something the CRM can act on: a responsible, a lead, a phone or an
    email, or a chat on a channel other than the web chat.

    A responsible counts only for a client who can be written back to: the first operator
    to take a web-chat visitor's dialog becomes their responsible, and a visitor who left
    nothing is still owed a lead once they do.
    """
    if contact.responsible_id is not None and await reachable(session, dialog, contact):
        return True
    lead = exists().where(Lead.contact_id == contact.id)
    return bool(
        await session.scalar(select(lead | _phone_or_email(contact) | _messenger_chat(contact)))
    )


def _phone_or_email(contact: Contact) -> Exists:
    return exists().where(
        ContactIdentity.contact_id == contact.id, ContactIdentity.kind.in_(("phone", "email"))
    )


def _messenger_chat(contact: Contact) -> Exists:
    """The contact has a chat on a channel that writes back (any but the web chat)."""
    visitor_types = [t for t in registry.TYPES if not registry.traits(t).writes_back]
    return exists().where(
        Chat.contact_id == contact.id,
        Chat.channel_id == Channel.id,
        Channel.type.not_in(visitor_types),
    )


def _tracked(dialog: Dialog) -> Tracked:
    return Tracked(
        contact_id=dialog.contact_id,
        client_known=dialog.client_known,
        lead_requested=dialog.lead_requested,
    )


async def track(
    session: AsyncSession,
    dialog: Dialog,
    chat: Chat,
    settings: LineSettings,
    texts: list[str],
    first: bool,
    default_region: str,
    lead_here: bool = False,
) -> Tracked:
    """Recognise the client of new messages in ``dialog`` (``first``: its first turn) and owe
    the dialog a lead if the rules say so. Running it twice changes nothing more.

    ``lead_here``: the CRM is the built-in one, whose lead is a row of this database, so it
    is added in this transaction instead of by a workflow of its own.
    """
    if not settings.crm.enabled:
        return _tracked(dialog)
    identities = client_identities(chat, settings, texts, default_region)
    owned = await owners(session, identities)
    starting = dialog.contact_id is None  # also a retried first turn is no longer starting
    candidate_ids = set(owned.values())
    candidate_ids.update(i for i in (dialog.contact_id, chat.contact_id) if i is not None)

    contacts: dict[int, Contact] = {}
    merged_away: list[int] = []  # candidates found merged into another contact
    own: int | None = None  # the dialog's contact so far, as it is now
    for contact_id in sorted(candidate_ids):  # id order: concurrent merges lock alike
        contact = await live_contact(session, contact_id, lock=True)
        if contact is not None:
            contacts[contact.id] = contact
            if contact.id != contact_id:
                merged_away.append(contact_id)
            if contact_id == dialog.contact_id:
                own = contact.id
    if contacts:
        kept, *others = (contacts[i] for i in sorted(contacts))
        if starting and first:  # before this turn's identities join it
            dialog.client_known = await is_known(session, dialog, kept)
        for other in others:
            await merge(session, kept, other)
        if merged_away:  # only a merge racing an identity's insert leaves one behind
            await session.execute(
                update(ContactIdentity)
                .where(ContactIdentity.contact_id.in_(merged_away))
                .values(contact_id=kept.id)
                .execution_options(synchronize_session="fetch")
            )
        if not starting and kept.id != own:  # merged into an older contact
            dialog.client_known = True
    else:
        kept = Contact(name=chat.name)
        session.add(kept)
        await session.flush()
    if kept.name is None and chat.name:
        kept.name = chat.name

    # Read again: one that another transaction gave to another contact since the first look
    # is inserted anyway, and the unique constraint fails this transaction (the caller runs
    # it again, and then finds and merges that contact).
    now_owned = await owners(session, identities)
    for kind, value in identities:
        if now_owned.get((kind, value)) != kept.id:
            session.add(ContactIdentity(contact_id=kept.id, kind=kind, value=value))
    chat.contact_id = kept.id
    dialog.contact_id = kept.id
    await session.flush()  # a taken identity fails here, inside the caller's transaction

    if (
        settings.crm.create == "lead"
        and not dialog.client_known
        and not dialog.lead_requested
        and await reachable(session, dialog, kept)
    ):
        dialog.lead_requested = True
        if lead_here:
            await leads.add(
                session, dialog, kept, leads.title(chat, dialog), leads.source(settings.crm, dialog)
            )
        else:
            session.add(Outbox(kind="lead", dialog_id=dialog.id))
        await session.flush()
    return _tracked(dialog)
