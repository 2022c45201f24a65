"""The chat tracker: recognise the client behind a dialog and keep their chats on one contact.

``track`` is one transaction's worth of work; the caller owns the transaction. Its rules:

- Identities: always the chat's channel identity; with ``crm.chat_tracker`` also the chat's
  phone and email fields (the channel vouches for them) and the phones and emails written in
  the client's messages (which could be anybody's).
- The client's contact: the dialog's, else the chat's. A new chat links to one existing
  contact: the oldest that an identity the channel vouches for belongs to, else the oldest
  one a written phone or email belongs to; otherwise a new contact is made, named after the
  chat. The client is known when that contact already has something the CRM can act on: a
  responsible, a lead, a phone or email, or a messenger chat (a web-chat visitor who left
  nothing in an earlier session is not known, even with a responsible, and gets a lead once
  they do).
- No merging: identities nobody has join the client's contact; one that belongs to another
  contact stays there. A message naming other people's phones or emails changes nobody's
  contact. Two contacts become one only when someone confirms it (``core.crm.merges``).
- A lead is owed once per dialog (``lead_requested`` plus the lead row for the built-in CRM,
  or an outbox row ``lead`` for the worker to create it in an external one) when
  ``crm.create`` is ``lead``, the client is not known, and they can be written back to.

Races: two chats of one new person arriving at once may both add the same phone. On
PostgreSQL the second insert waits for the first transaction and then fails with an
``IntegrityError``; SQLite runs write transactions one at a time. This module does not
catch it: the caller rolls back and runs ``track`` again, which then finds the identity
taken and links a new chat to its contact (``activities/chat_tracker.py`` does so). A
deadlock is broken by PostgreSQL and retried the same way.
"""

from sqlalchemy import Exists, exists, select, tuple_
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
) -> tuple[list[Identity], list[Identity]]:
    """Who the client is, as far as this chat and these messages say: the identities the
    channel vouches for (the chat itself, the phone and email it gave), then those only
    written in the messages (anybody's, as far as anyone knows)."""
    given: list[Identity] = [("channel", channel_identity(chat.channel_id, chat.external_id))]
    if not settings.crm.chat_tracker:
        return given, []
    if chat.phone and (phone := normalise_phone(chat.phone, default_region)):
        given.append(("phone", phone))
    if chat.email and (email := normalise_email(chat.email)):
        given.append(("email", email))
    written: list[Identity] = []
    for text in texts:
        phones, emails = find_contacts(text, default_region)
        written += [("phone", p) for p in phones] + [("email", e) for e in emails]
    return given, [i for i in dict.fromkeys(written) if i not in given]


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


async def _contact_of(
    session: AsyncSession,
    dialog: Dialog,
    chat: Chat,
    given: list[Identity],
    written: list[Identity],
) -> Contact | None:
    """The client's contact, locked: the dialog's or the chat's once it has one; for a new
    chat, the one contact its identities lead to (one the channel vouches for first, else
    one its messages name, the oldest of each); None for a client nobody knows."""
    for contact_id in (dialog.contact_id, chat.contact_id):
        if contact_id is not None and (found := await live_contact(session, contact_id, True)):
            return found
    for identities in (given, written):
        owned = await owners(session, identities)
        for contact_id in sorted(set(owned.values())):
            if found := await live_contact(session, contact_id, lock=True):
                return found
    return None


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
    given, written = client_identities(chat, settings, texts, default_region)
    identities = given + written
    starting = dialog.contact_id is None  # also a retried first turn is no longer starting
    kept = await _contact_of(session, dialog, chat, given, written)
    if kept is None:
        kept = Contact(name=chat.name)
        session.add(kept)
        await session.flush()
    elif starting and first:  # before this turn's identities join it
        dialog.client_known = await is_known(session, dialog, kept)
    if kept.name is None and chat.name:
        kept.name = chat.name

    # Identities nobody has join the client's contact; one another contact has stays there
    # (two contacts become one only by a merge someone confirms: ``core.crm.merges``). Read
    # again: one that another transaction added since is inserted anyway, the unique
    # constraint fails this transaction, and the caller runs it again, finding it taken.
    now_owned = await owners(session, identities)
    for kind, value in identities:
        if (kind, value) not in now_owned:
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
