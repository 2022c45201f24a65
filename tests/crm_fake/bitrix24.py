"""A fake Bitrix24 portal: the REST methods openlines calls, behind an inbound-webhook URL.

Served by uvicorn in the test's event loop on 127.0.0.1 and a free port. Its contacts,
companies and leads are plain dicts the test seeds and inspects (ids and user ids as
strings, multifields as lists of ``{"VALUE", "VALUE_TYPE"}``, as Bitrix24 answers). An
outage answers 503: ``outage`` while it is set, or ``fail_next`` calls and then recovers;
``lose_reply`` does a method's next call and answers 503 anyway (the answer lost).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import count
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.local_server import serving

TOKEN = "fake-webhook-token"
ENTITIES = ("LEAD", "CONTACT", "COMPANY")


class FakeBitrix24:
    def __init__(self) -> None:
        self.records: dict[str, dict[str, dict[str, Any]]] = {e: {} for e in ENTITIES}
        self.calls: list[str] = []  # methods called, in order (failed ones included)
        self.outage = False
        self.fail_next = 0
        self.failed = 0  # calls answered 503
        self.lose_reply: set[str] = set()
        self.webhook_url = ""
        self._ids = count(1)
        self.app = Starlette(
            routes=[Route("/rest/1/{token}/{method}", self._handle, methods=["POST"])]
        )

    @property
    def leads(self) -> dict[str, dict[str, Any]]:
        return self.records["LEAD"]

    def seed(
        self,
        entity: str,
        *,
        phones: list[str] | None = None,
        emails: list[str] | None = None,
        responsible: int | None = None,
        **fields: Any,
    ) -> str:
        """Add a contact, company or lead as if made in the portal; its id."""
        record_id = str(next(self._ids))
        record: dict[str, Any] = {"ID": record_id, **fields}
        record["PHONE"] = [{"VALUE": p, "VALUE_TYPE": "WORK"} for p in phones or []]
        record["EMAIL"] = [{"VALUE": e, "VALUE_TYPE": "WORK"} for e in emails or []]
        record["ASSIGNED_BY_ID"] = str(responsible) if responsible is not None else "1"
        self.records[entity][record_id] = record
        return record_id

    async def _handle(self, request: Request) -> Response:
        if request.path_params["token"] != TOKEN:
            return _error(401, "INVALID_CREDENTIALS", "Invalid request credentials")
        method = request.path_params["method"].removesuffix(".json")
        self.calls.append(method)
        if self.outage or self.fail_next > 0:
            self.fail_next = max(0, self.fail_next - 1)
            self.failed += 1
            return PlainTextResponse("Service Unavailable", status_code=503)
        params = await request.json()
        handler = {
            "crm.duplicate.findbycomm": self._find_by_comm,
            "crm.contact.get": lambda p: self._get("CONTACT", p),
            "crm.company.get": lambda p: self._get("COMPANY", p),
            "crm.lead.get": lambda p: self._get("LEAD", p),
            "crm.lead.list": self._lead_list,
            "crm.lead.add": self._lead_add,
            "crm.lead.update": self._lead_update,
        }.get(method)
        if handler is None:
            return _error(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")
        answer = handler(params)
        if method in self.lose_reply:
            self.lose_reply.discard(method)
            self.failed += 1
            return PlainTextResponse("Gateway Timeout", status_code=504)
        return answer

    def _find_by_comm(self, params: dict[str, Any]) -> Response:
        kind, values = params.get("type"), params.get("values")
        if kind not in ("PHONE", "EMAIL") or not isinstance(values, list) or len(values) > 20:
            return _error(400, "", "Invalid type or values")
        wanted = {_normal(kind, v) for v in values}
        found: dict[str, list[int]] = {}
        for entity in ENTITIES:
            if params.get("entity_type", entity) != entity:
                continue
            ids = [
                int(record_id)
                for record_id, record in self.records[entity].items()
                if any(_normal(kind, f["VALUE"]) in wanted for f in record.get(kind, []))
            ]
            if ids:
                found[entity] = sorted(ids)
        # Bitrix24 answers an empty list, not an empty object, when nothing matches.
        return JSONResponse({"result": found or []})

    def _get(self, entity: str, params: dict[str, Any]) -> Response:
        record = self.records[entity].get(str(params.get("id")))
        if record is None:
            return _error(400, "", "Not found")
        return JSONResponse({"result": record})

    def _lead_list(self, params: dict[str, Any]) -> Response:
        conditions = params.get("filter", {})
        rows = [
            lead
            for lead in self.leads.values()
            if all(str(lead.get(k)) == str(v) for k, v in conditions.items())
        ]
        select = params.get("select")
        if select:
            rows = [{k: v for k, v in lead.items() if k in {*select, "ID"}} for lead in rows]
        return JSONResponse({"result": rows, "total": len(rows)})

    def _lead_add(self, params: dict[str, Any]) -> Response:
        fields = params.get("fields")
        if not isinstance(fields, dict) or not fields.get("TITLE"):
            return _error(400, "", "Fields are required")
        for multifield in ("PHONE", "EMAIL"):
            if any("VALUE" not in f for f in fields.get(multifield, [])):
                return _error(400, "", f"{multifield} must hold VALUE items")
        lead_id = str(next(self._ids))
        lead = {**fields, "ID": lead_id}
        lead["ASSIGNED_BY_ID"] = str(fields.get("ASSIGNED_BY_ID", 1))  # else the webhook's user
        self.leads[lead_id] = lead
        return JSONResponse({"result": int(lead_id)})

    def _lead_update(self, params: dict[str, Any]) -> Response:
        lead = self.leads.get(str(params.get("id")))
        if lead is None:
            return _error(400, "", "Not found")
        for key, value in params.get("fields", {}).items():
            lead[key] = str(value) if key == "ASSIGNED_BY_ID" else value
        return JSONResponse({"result": True})


def _error(status: int, code: str, description: str) -> Response:
    return JSONResponse({"error": code, "error_description": description}, status_code=status)


def _normal(kind: str, value: str) -> str:
    """Phones compare by their digits, emails case-folded."""
    return "".join(c for c in value if c.isdigit()) if kind == "PHONE" else value.casefold()


@asynccontextmanager
async def serve_fake() -> AsyncIterator[FakeBitrix24]:
    """A running fake portal; ``webhook_url`` is where to call it."""
    fake = FakeBitrix24()
    async with serving(fake.app) as base_url:
        fake.webhook_url = f"{base_url}/rest/1/{TOKEN}/"
        yield fake
