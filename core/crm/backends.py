"""Where leads go: one small interface, the built-in CRM and Bitrix24 behind it.

The built-in CRM is our own tables (``core/crm/models.py``), which the activities write
themselves; a backend only says what an *external* CRM knows and records there. So the
built-in backend knows nobody and records nothing.
"""

from dataclasses import dataclass, field
from typing import Literal, Protocol

import httpx

from core.config import Settings

EntityType = Literal["CONTACT", "COMPANY", "LEAD"]


def origin_id(dialog_id: int) -> str:
    """The id a lead carries in the external CRM to say which dialog made it; creating a
    lead looks it up first, so a retried or repeated creation finds the first one."""
    return f"openlines-dialog-{dialog_id}"


@dataclass(frozen=True)
class Match:
    """A client the external CRM knows: the record found and the user responsible for it
    (an operator id: operator ids are used as the CRM's user ids as they are)."""

    entity_type: EntityType
    entity_id: str
    responsible_id: int | None


@dataclass(frozen=True)
class LeadDraft:
    """A lead to record for a dialog whose client the CRM does not know."""

    dialog_id: int
    title: str
    source: str  # the channel type, or the line's ``crm.lead_source`` as given
    name: str | None = None
    phones: list[str] = field(default_factory=list)  # E.164
    emails: list[str] = field(default_factory=list)
    responsible_id: int | None = None
    description: str = ""
    history: str = ""  # the dialog's conversation, bounded (``leads.history``)

    @property
    def origin_id(self) -> str:
        return origin_id(self.dialog_id)


class CrmBackend(Protocol):
    """What the lead activities ask of a CRM. Every method may raise on an outage; the
    activity is retried until it succeeds."""

    async def find_client(
        self, phones: list[str], emails: list[str], messenger_ids: list[str]
    ) -> Match | None:
        """The record of a client with any of these phones, emails or messenger ids."""
        ...

    async def find_lead(self, origin_id: str) -> str | None:
        """The external id of the lead created with ``origin_id``, if there is one."""
        ...

    async def create_lead(self, draft: LeadDraft) -> str | None:
        """Record the lead (once per origin id); its external id, or None if the CRM
        keeps no leads of its own."""
        ...

    async def set_lead_responsible(self, external_id: str, user_id: int) -> None:
        """Make ``user_id`` responsible for the lead."""
        ...


class BuiltinCrm:
    """The built-in CRM: leads live in our tables only, so nothing is external."""

    async def find_client(
        self, phones: list[str], emails: list[str], messenger_ids: list[str]
    ) -> Match | None:
        return None  # the chat tracker recognises clients in our own tables

    async def find_lead(self, origin_id: str) -> str | None:
        return None

    async def create_lead(self, draft: LeadDraft) -> str | None:
        return None

    async def set_lead_responsible(self, external_id: str, user_id: int) -> None:
        return None


def backend_for(settings: Settings, http: httpx.AsyncClient) -> CrmBackend:
    """The backend ``settings.crm`` names; ``http`` is the client Bitrix24 calls go
    through (its owner closes it)."""
    if settings.crm == "builtin":
        return BuiltinCrm()
    if not settings.bitrix24_webhook_url.get_secret_value():
        raise ValueError("OPENLINES_CRM=bitrix24 needs OPENLINES_BITRIX24_WEBHOOK_URL")
    # Imported here: the adapter builds on the types above.
    from core.crm.bitrix24 import Bitrix24Crm

    # Handed over as a SecretStr: the URL holds the portal's token.
    return Bitrix24Crm(settings.bitrix24_webhook_url, http)
