"""Bitrix24 as the CRM, through an inbound webhook's REST methods.

Each call is ``POST <webhook url>/<method>.json`` with a JSON body. Anything but a result
raises (HTTP 5xx and other error statuses, network errors, an ``error`` in the answer), so
the activity is retried until Bitrix24 answers; a misconfigured webhook is retried too,
and the lead goes through once it is fixed.

Decisions:

* Clients are searched with ``crm.duplicate.findbycomm``, which takes only ``PHONE`` and
  ``EMAIL``. Bitrix24 keeps messenger ids in the ``IM`` multifield, which its REST API
  offers no duplicate search for, so messenger ids are not looked up there: a client known
  only by a messenger id is recognised by the chat tracker in our own tables. Leads carry
  the channel identity in ``SOURCE_DESCRIPTION`` instead of an ``IM`` value, whose types
  Bitrix24 fixes (a wrong one would refuse the lead).
* A contact, then a company, then a lead with the client's phone or email counts as the
  client being known, as in Bitrix24's own open lines: a repeat client gets no new lead.
* Operator ids are Bitrix24 user ids as they are (``ASSIGNED_BY_ID``): run openlines with
  operators numbered as the portal's users. A responsible user who is not one of our
  operators is not copied to our contact.
* A lead carries the client's name as ``NAME`` (whole: it is not split into first and last
  names) and the dialog's conversation, bounded, as plain text in ``COMMENTS``.
* A lead is found again by ``ORIGINATOR_ID`` ``openlines`` and ``ORIGIN_ID``
  ``openlines-dialog-<id>`` (``crm.lead.list``) before it is added, so a retried or repeated
  creation adds it once. That holds while attempts do not overlap: the HTTP client's
  timeout must stay under the activity's ``start_to_close`` (``worker.CRM_HTTP_TIMEOUT_S``).
* The webhook URL holds the portal's token (``/rest/<user>/<token>/``), and httpx puts URLs
  in its exceptions and its request log, so, as for Telegram's bot tokens
  (``channels/telegram/bot_api.py``): every failure is a ``Bitrix24Error`` naming the method,
  the HTTP status and Bitrix24's explanation (scrubbed), raised outside any ``except`` block
  so that no httpx exception is chained to it (nor reaches a Temporal failure); and importing
  this module installs a filter on the ``httpx`` logger that blanks the token out of its
  ``HTTP Request: POST <url>`` lines.
"""

import re
from typing import Any, get_args

import httpx
from pydantic import SecretStr

from channels import registry
from core.crm.backends import EntityType, LeadDraft, Match
from core.log_scrub import scrub_httpx_log

ORIGINATOR_ID = "openlines"
# Bitrix24's standard lead sources; any other source is sent as OTHER and described.
STANDARD_SOURCES = {
    "CALL",
    "EMAIL",
    "WEB",
    "ADVERTISING",
    "PARTNER",
    "RECOMMENDATION",
    "TRADE_SHOW",
    "WEBFORM",
    "CALLBACK",
    "OTHER",
}
# crm.duplicate.findbycomm takes at most 20 values a call.
FIND_BATCH = 20


# Characters of Bitrix24's (or the network's) explanation kept in an error.
DESCRIPTION_MAX = 300
REDACTED = "<redacted>"
# The token in a webhook URL's path: ``/rest/<user id>/<token>`` (the rest of the URL stays).
_TOKEN_IN_PATH = re.compile(r"(/rest/[0-9]+/)[^/?#\s\"']+")
# Tokens shorter than this are not replaced wherever they appear (``x`` would blank every x);
# the path pattern still catches them in URLs. Real ones are 16 characters or more.
_MIN_SCRUBBED_TOKEN = 8


def scrub(text: str, token: str = "") -> str:
    """``text`` without ``token`` nor any webhook URL's token in it."""
    if len(token) >= _MIN_SCRUBBED_TOKEN:
        text = text.replace(token, REDACTED)
    return _TOKEN_IN_PATH.sub(rf"\g<1>{REDACTED}", text)


scrub_httpx_log(scrub)


class Bitrix24Error(Exception):
    """A call failed: Bitrix24 answered an error (or no result), or did not answer.

    ``status`` is the HTTP status, None when no answer came (a network error, a timeout);
    ``code`` is Bitrix24's error code, if it gave one. Never holds the webhook URL.
    """

    def __init__(self, method: str, code: str, description: str, status: int | None = None) -> None:
        parts = [f"HTTP {status}" if status is not None else "no answer", code, description]
        super().__init__(f"Bitrix24 {method}: " + ": ".join(p for p in parts if p))
        self.method = method
        self.code = code
        self.status = status


class Bitrix24Crm:
    """The ``CrmBackend`` for a Bitrix24 portal's inbound webhook."""

    def __init__(self, webhook_url: SecretStr | str, http: httpx.AsyncClient) -> None:
        url = webhook_url.get_secret_value() if isinstance(webhook_url, SecretStr) else webhook_url
        self._base = url.rstrip("/")
        self._token = self._base.rsplit("/", 1)[-1]
        self._http = http

    def __repr__(self) -> str:
        return "Bitrix24Crm()"  # never the webhook URL

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        """Call a REST method; its ``result``, or ``Bitrix24Error`` (never holding the URL)."""
        outcome = await self._post(method, params)
        if isinstance(outcome, Bitrix24Error):
            raise outcome  # raised here, outside the except blocks: no httpx error chained
        response = outcome
        try:
            body = response.json()
        except ValueError:
            body = None
        status = response.status_code
        if isinstance(body, dict) and body.get("error") is not None:
            code = self._clean(str(body["error"]))
            raise Bitrix24Error(
                method, code, self._clean(str(body.get("error_description", ""))), status
            )
        if response.is_error:
            raise Bitrix24Error(method, "", self._clean(response.reason_phrase), status)
        if not isinstance(body, dict) or "result" not in body:
            raise Bitrix24Error(method, "", "no result in the answer", status)
        return body["result"]

    async def _post(self, method: str, params: dict[str, Any]) -> httpx.Response | Bitrix24Error:
        """The answer, or the error to raise for a call that got none."""
        try:
            return await self._http.post(f"{self._base}/{method}.json", json=params)
        except httpx.TimeoutException:
            detail = "no answer within the HTTP client's timeout"
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            detail = f"{type(error).__name__}: {error}"
        return Bitrix24Error(method, "", self._clean(detail))

    def _clean(self, text: str) -> str:
        """``text`` without the webhook URL or its token, on one line, bounded."""
        text = text.replace(self._base, "<webhook url>")
        return " ".join(scrub(text, self._token).split())[:DESCRIPTION_MAX]

    async def find_client(
        self, phones: list[str], emails: list[str], messenger_ids: list[str]
    ) -> Match | None:
        """The client's contact, company or lead by phone or email (see the module's notes
        on messenger ids), with its responsible user."""
        found: dict[str, set[int]] = {}
        for kind, values in (("PHONE", phones), ("EMAIL", emails)):
            for start in range(0, len(values), FIND_BATCH):
                batch = values[start : start + FIND_BATCH]
                result = await self.call(
                    "crm.duplicate.findbycomm", {"type": kind, "values": batch}
                )
                # Nothing found comes back as an empty list rather than an object.
                for entity, ids in (result or {}).items():
                    found.setdefault(entity, set()).update(int(i) for i in ids)
        for entity in get_args(EntityType):
            if found.get(entity):
                entity_id = str(min(found[entity]))  # the oldest record
                record = await self.call(f"crm.{entity.lower()}.get", {"id": entity_id})
                return Match(entity, entity_id, _user_id(record.get("ASSIGNED_BY_ID")))
        return None

    async def find_lead(self, origin_id: str) -> str | None:
        result = await self.call(
            "crm.lead.list",
            {
                "filter": {"ORIGINATOR_ID": ORIGINATOR_ID, "ORIGIN_ID": origin_id},
                "select": ["ID"],
                "order": {"ID": "ASC"},
            },
        )
        return str(result[0]["ID"]) if result else None

    async def create_lead(self, draft: LeadDraft) -> str:
        """Add the lead unless the dialog's lead is there already; its id either way."""
        existing = await self.find_lead(draft.origin_id)
        if existing is not None:
            return existing
        source = draft.source.upper()
        if source not in STANDARD_SOURCES:
            source = registry.traits(draft.source).crm_source or "OTHER"
        fields: dict[str, Any] = {
            "TITLE": draft.title,
            "SOURCE_ID": source,
            "SOURCE_DESCRIPTION": f"{draft.source}; {draft.description}".strip("; "),
            "ORIGINATOR_ID": ORIGINATOR_ID,
            "ORIGIN_ID": draft.origin_id,
        }
        if draft.name:
            fields["NAME"] = draft.name
        if draft.history:
            fields["COMMENTS"] = draft.history
        if draft.phones:
            fields["PHONE"] = [{"VALUE": p, "VALUE_TYPE": "WORK"} for p in draft.phones]
        if draft.emails:
            fields["EMAIL"] = [{"VALUE": e, "VALUE_TYPE": "WORK"} for e in draft.emails]
        if draft.responsible_id is not None:
            fields["ASSIGNED_BY_ID"] = draft.responsible_id
        lead_id = await self.call(
            "crm.lead.add", {"fields": fields, "params": {"REGISTER_SONET_EVENT": "Y"}}
        )
        return str(lead_id)

    async def set_lead_responsible(self, external_id: str, user_id: int) -> None:
        updated = await self.call(
            "crm.lead.update", {"id": external_id, "fields": {"ASSIGNED_BY_ID": user_id}}
        )
        if not updated:
            raise Bitrix24Error("crm.lead.update", "", f"lead {external_id} was not updated")


def _user_id(value: object) -> int | None:
    """A user id as Bitrix24 writes it (a string of digits), or None."""
    text = str(value) if value is not None else ""
    return int(text) if text.isdigit() and int(text) > 0 else None
