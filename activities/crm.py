"""Lead activities of ``CrmSyncWorkflow``: create a dialog's lead, and tell the external CRM
who is responsible for it.

Each step is a short transaction and no transaction is held while the CRM answers: read
what the lead needs, ask the CRM, then write. Both are safe to run twice: a dialog has at
most one lead (the unique ``leads.dialog_id``; a second insert reads the first), the
external CRM finds a lead it already has by the dialog's origin id, and pushing the
responsible user sends the value our table holds now.
"""

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from core.crm import leads
from core.crm.backends import CrmBackend, LeadDraft, Match
from core.crm.models import Contact, ContactIdentity, Lead
from core.line_settings import LineSettings
from core.models import NOTE, Chat, Dialog, Line, Message, Operator
from workflows.models import CrmOutcome, CrmTask

# Pushes of a lead's responsible user that may chase a value changing meanwhile.
PUSH_ROUNDS = 5


@dataclass(frozen=True)
class _Snapshot:
    """What creating a lead needs, read in one transaction."""

    draft: LeadDraft
    messenger_ids: list[str]
    look_up: bool  # ``crm.enabled``: look the client up in the CRM


class CrmActivities:
    """Activities that keep leads in our tables and in the configured CRM."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], backend: CrmBackend) -> None:
        self._sessions = sessions
        self._backend = backend

    @activity.defn
    async def create_lead(self, task: CrmTask) -> CrmOutcome:
        """The dialog's lead, created once; none when the external CRM knows the client
        (its responsible user then becomes our contact's, if one of our operators)."""
        snapshot = await self._snapshot(task.dialog_id)
        if snapshot is None:  # created before: make sure the CRM has its responsible
            return await self._push_responsible(task.dialog_id)
        draft = snapshot.draft
        # A lead an earlier attempt added (its answer lost) is this dialog's: no search.
        external_id = await self._backend.find_lead(draft.origin_id)
        added_before = external_id is not None
        if external_id is None and snapshot.look_up:
            match = await self._backend.find_client(
                draft.phones, draft.emails, snapshot.messenger_ids
            )
            if match is not None:
                await self._client_known(task.dialog_id, match)
                return CrmOutcome(client_known=True)
        if external_id is None:
            external_id = await self._backend.create_lead(draft)
        try:
            lead = await self._insert(draft, external_id)
        except IntegrityError:  # another run inserted it first?
            async with self._sessions() as session, session.begin():
                if await _lead_of(session, task.dialog_id) is None:
                    raise
            return await self._push_responsible(task.dialog_id)
        if lead.external_id is None:
            return CrmOutcome(lead_id=lead.id)
        if added_before or lead.responsible_id != draft.responsible_id:
            # The CRM's lead may name an older owner: the dialog changed hands meanwhile.
            return await self._push_responsible(task.dialog_id)
        return CrmOutcome(
            lead_id=lead.id,
            external_id=lead.external_id,
            responsible_pushed=lead.responsible_id is not None,
        )

    @activity.defn
    async def reassign_lead(self, task: CrmTask) -> CrmOutcome:
        """Tell the external CRM who is responsible for the dialog's lead now (nothing to
        tell for the built-in CRM, or a lead it does not have)."""
        return await self._push_responsible(task.dialog_id)

    async def _snapshot(self, dialog_id: int) -> _Snapshot | None:
        """The lead to create for the dialog; None if it has one."""
        async with self._sessions() as session, session.begin():
            if await _lead_of(session, dialog_id) is not None:
                return None
            dialog = await session.get(Dialog, dialog_id)
            if dialog is None:
                raise LookupError(f"dialog {dialog_id} does not exist")
            chat = await session.get(Chat, dialog.chat_id)
            line = await session.get(Line, dialog.line_id)
            assert chat is not None and line is not None
            settings = LineSettings.model_validate(line.settings).crm
            contact = await _contact(session, dialog.contact_id)
            identities: list[ContactIdentity] = []
            if contact is not None:
                identities = list(
                    await session.scalars(
                        select(ContactIdentity)
                        .where(ContactIdentity.contact_id == contact.id)
                        .order_by(ContactIdentity.id)
                    )
                )
            phones = [i.value for i in identities if i.kind == "phone"]
            emails = [i.value for i in identities if i.kind == "email"]
            channel_ids = [i.value for i in identities if i.kind == "channel"]
            if chat.phone and chat.phone not in phones:
                phones.append(chat.phone)
            if chat.email and chat.email.casefold() not in emails:
                emails.append(chat.email.casefold())
            chat_identity = f"{chat.channel_id}:{chat.external_id}"
            if chat_identity not in channel_ids:
                channel_ids.append(chat_identity)
            name = chat.name or (contact.name if contact else None)
            draft = LeadDraft(
                dialog_id=dialog.id,
                title=leads.title(chat, dialog),
                source=leads.source(settings, dialog),
                name=name,
                phones=phones,
                emails=emails,
                responsible_id=leads.responsible(dialog, contact),
                description=f"dialog {dialog.id}, {dialog.channel_type} chat {chat_identity}",
                history=await _history(session, dialog.id, name or "Client"),
            )
            return _Snapshot(draft=draft, messenger_ids=channel_ids, look_up=settings.enabled)

    async def _client_known(self, dialog_id: int, match: Match) -> None:
        """Mark the dialog's client known; their responsible user becomes the contact's
        when it is one of our operators."""
        async with self._sessions() as session, session.begin():
            dialog = await session.get(Dialog, dialog_id)
            assert dialog is not None
            dialog.client_known = True
            contact = await _contact(session, dialog.contact_id)
            if contact is None or match.responsible_id is None:
                return
            operator = await session.get(Operator, match.responsible_id)
            if operator is not None and not operator.fired:
                contact.responsible_id = operator.id

    async def _insert(self, draft: LeadDraft, external_id: str | None) -> Lead:
        """The lead row and its ``lead.created`` event, owned by whoever holds the dialog
        now."""
        async with self._sessions() as session, session.begin():
            dialog = await session.get(Dialog, draft.dialog_id)
            assert dialog is not None
            contact = await _contact(session, dialog.contact_id)
            return await leads.add(
                session,
                dialog,
                contact,
                draft.title[:255],
                draft.source,
                external_id,
                comments=draft.history,
            )

    async def _push_responsible(self, dialog_id: int) -> CrmOutcome:
        """Send the lead's responsible user to the external CRM, again while it changes
        meanwhile (two pushes racing end with the value our table holds last)."""
        for _ in range(PUSH_ROUNDS):
            async with self._sessions() as session, session.begin():
                lead = await _lead_of(session, dialog_id)
            if lead is None:
                return CrmOutcome()
            outcome = CrmOutcome(lead_id=lead.id, external_id=lead.external_id)
            if lead.external_id is None or lead.responsible_id is None:
                return outcome
            await self._backend.set_lead_responsible(lead.external_id, lead.responsible_id)
            async with self._sessions() as session, session.begin():
                now = await _lead_of(session, dialog_id)
            if now is None or now.responsible_id == lead.responsible_id:
                return outcome.model_copy(update={"responsible_pushed": True})
        raise RuntimeError(f"the responsible for dialog {dialog_id}'s lead keeps changing")


async def _history(session: AsyncSession, dialog_id: int, client: str) -> str:
    """The dialog's conversation as its lead carries it (``leads.history``: bounded)."""
    said_to_client = (Message.dialog_id == dialog_id) & (Message.author != NOTE)
    total = await session.scalar(select(func.count(Message.id)).where(said_to_client))
    newest = await session.scalars(
        select(Message)
        .where(said_to_client)
        .order_by(Message.id.desc())
        .limit(leads.HISTORY_MESSAGES)
    )
    messages = list(reversed(list(newest)))
    operator_ids = {m.operator_id for m in messages if m.operator_id is not None}
    rows = await session.execute(
        select(Operator.id, Operator.name).where(Operator.id.in_(operator_ids))
    )
    names: dict[int | None, str] = {operator_id: name for operator_id, name in rows}
    said = [
        leads.Said(m.created_at, leads.speaker(m.author, client, names.get(m.operator_id)), m.text)
        for m in messages
    ]
    return leads.history(said, total or 0)


async def _lead_of(session: AsyncSession, dialog_id: int) -> Lead | None:
    lead: Lead | None = await session.scalar(select(Lead).where(Lead.dialog_id == dialog_id))
    return lead


async def _contact(session: AsyncSession, contact_id: int | None) -> Contact | None:
    """The contact, or the one it was merged into."""
    seen: set[int] = set()
    while contact_id is not None and contact_id not in seen:
        seen.add(contact_id)
        contact = await session.get(Contact, contact_id)
        if contact is None or contact.merged_into_id is None:
            return contact
        contact_id = contact.merged_into_id
    return None
