"""The CRM API: contacts and leads, their validation and search, a contact's dialogs across
lines, the operator's lead request, and who may do what."""

from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import delete, func, select

from activities.chat_tracker import ChatTrackerActivities
from core.crm.models import Lead
from core.models import Dialog, Outbox, utcnow
from tests.conftest import client_for
from workflows.models import ClientTurn

PROBLEM_JSON = "application/problem+json"


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    return body


def fields(response: Any) -> list[str]:
    return [e["field"] for e in problem(response, 422)["errors"]]


async def operator(admin: AsyncClient, name: str = "Olga") -> int:
    created: int = ok(await admin.post("/v1/operators", json={"name": name}), 201)["id"]
    return created


async def bot(admin: AsyncClient) -> int:
    created: int = ok(await admin.post("/v1/bots", json={"name": "Helper"}), 201)["id"]
    return created


async def key(admin: AsyncClient, role: str, **binding: int) -> str:
    issued: str = ok(await admin.post("/v1/api-keys", json={"role": role, **binding}), 201)["key"]
    return issued


async def client_dialog(app: FastAPI, admin: AsyncClient, **chat: str) -> int:
    """A client writes through a new line's API channel; the chat tracker sees it."""
    line = ok(await admin.post("/v1/lines", json={}), 201)["id"]
    channel = ok(await admin.post(f"/v1/lines/{line}/channels", json={"type": "api"}), 201)
    async with client_for(app, channel["secret"]) as as_channel:
        filed = ok(
            await as_channel.post(
                f"/v1/channels/{channel['id']}/messages",
                json={"chat": chat, "message": {"external_id": "m-1", "text": "Hello"}},
            ),
            202,
        )
    turn = ClientTurn(
        dialog_id=filed["dialog_id"],
        message_ids=[filed["message_id"]],
        first=True,
        off_hours_sent=False,
        at=utcnow(),
    )
    await ChatTrackerActivities(app.state.sessions, "US").track(turn)
    dialog_id: int = filed["dialog_id"]
    return dialog_id


async def lead_rows(app: FastAPI, dialog_id: int) -> int:
    async with app.state.sessions() as session:
        query = select(func.count()).select_from(Outbox)
        found = await session.scalar(
            query.where(Outbox.kind == "lead", Outbox.dialog_id == dialog_id)
        )
        return int(found or 0)


async def test_contacts_are_created_read_changed_and_deleted(admin: AsyncClient):
    olga = await operator(admin)
    created = ok(
        await admin.post(
            "/v1/crm/contacts",
            json={
                "name": "Ann",
                "phones": ["(650) 253-0000", "+1 650 253 0000", "+44 20 7946 0018"],
                "emails": [" ANN@Example.com"],
                "responsible_id": olga,
            },
        ),
        201,
    )
    assert created["phones"] == ["+16502530000", "+442079460018"]  # normalised, once each
    assert created["emails"] == ["ann@example.com"]
    assert created["responsible"] == {"id": olga, "name": "Olga"}
    assert (created["channels"], created["merged_into_id"]) == ([], None)
    assert ok(await admin.get(f"/v1/crm/contacts/{created['id']}")) == created

    changed = ok(
        await admin.patch(
            f"/v1/crm/contacts/{created['id']}",
            json={"name": "Ann Lee", "phones": ["+16502530000", "650 555 0123"]},
        )
    )
    assert (changed["name"], changed["phones"]) == ("Ann Lee", ["+16502530000", "+16505550123"])
    assert changed["emails"] == ["ann@example.com"]  # not given: kept
    cleared = ok(
        await admin.patch(
            f"/v1/crm/contacts/{created['id']}", json={"emails": [], "responsible_id": None}
        )
    )
    assert (cleared["emails"], cleared["responsible"]) == ([], None)

    assert (await admin.delete(f"/v1/crm/contacts/{created['id']}")).status_code == 204
    problem(await admin.get(f"/v1/crm/contacts/{created['id']}"), 404)
    # Its phones are free again.
    ok(await admin.post("/v1/crm/contacts", json={"phones": ["+16502530000"]}), 201)


async def test_bad_contacts_are_refused_naming_the_field(admin: AsyncClient):
    for body, field in (
        ({"phones": ["+16502530000", "12345"]}, "phones[1]"),
        ({"phones": ["020 7946 0018"]}, "phones[0]"),  # not a US number
        ({"emails": ["ann@example.com", "ann@"]}, "emails[1]"),
        ({"name": ""}, "name"),
        ({"phone": "+16502530000"}, "phone"),
    ):
        assert fields(await admin.post("/v1/crm/contacts", json=body)) == [field], body
    nobody = problem(await admin.post("/v1/crm/contacts", json={"responsible_id": 999}), 404)
    assert [e["field"] for e in nobody["errors"]] == ["responsible_id"]
    contact = ok(await admin.post("/v1/crm/contacts", json={}), 201)
    for change, field in (
        ({"phones": None}, "phones"),
        ({"emails": ["nope"]}, "emails[0]"),
    ):
        patched = await admin.patch(f"/v1/crm/contacts/{contact['id']}", json=change)
        assert fields(patched) == [field], change
    unknown = await admin.patch(f"/v1/crm/contacts/{contact['id']}", json={"responsible_id": 999})
    assert [e["field"] for e in problem(unknown, 404)["errors"]] == ["responsible_id"]
    problem(await admin.patch("/v1/crm/contacts/999", json={}), 404)
    problem(await admin.delete("/v1/crm/contacts/999"), 404)


async def test_a_phone_or_email_belongs_to_one_contact(admin: AsyncClient):
    ann = ok(await admin.post("/v1/crm/contacts", json={"phones": ["+16502530000"]}), 201)
    taken = problem(await admin.post("/v1/crm/contacts", json={"phones": ["650-253-0000"]}), 409)
    assert f"contact {ann['id']}" in taken["detail"]
    bob = ok(await admin.post("/v1/crm/contacts", json={"emails": ["bob@example.org"]}), 201)
    problem(
        await admin.patch(f"/v1/crm/contacts/{bob['id']}", json={"phones": ["6502530000"]}), 409
    )
    assert ok(await admin.get(f"/v1/crm/contacts/{bob['id']}"))["phones"] == []
    # Giving a contact its own phone again is no conflict.
    ok(await admin.patch(f"/v1/crm/contacts/{ann['id']}", json={"phones": ["(650) 253 0000"]}))


async def test_contacts_are_found_by_phone_or_email_however_written(admin: AsyncClient):
    ann = ok(
        await admin.post(
            "/v1/crm/contacts", json={"phones": ["+16502530000"], "emails": ["ann@example.com"]}
        ),
        201,
    )
    others = [ok(await admin.post("/v1/crm/contacts", json={}), 201)["id"] for _ in range(3)]
    for query in ("phone=650.253.0000", "phone=%2B1%20(650)%20253-0000", "email=ANN@EXAMPLE.COM"):
        found = ok(await admin.get(f"/v1/crm/contacts?{query}"))
        assert [c["id"] for c in found["items"]] == [ann["id"]], query
    assert ok(await admin.get("/v1/crm/contacts?phone=6505550123"))["items"] == []
    assert fields(await admin.get("/v1/crm/contacts?phone=call+me")) == ["phone"]
    assert fields(await admin.get("/v1/crm/contacts?email=nobody")) == ["email"]

    first = ok(await admin.get("/v1/crm/contacts?limit=3"))
    assert [c["id"] for c in first["items"]] == others[::-1]  # newest first
    rest = ok(await admin.get(f"/v1/crm/contacts?limit=3&cursor={first['next_cursor']}"))
    assert ([c["id"] for c in rest["items"]], rest["next_cursor"]) == ([ann["id"]], None)
    assert fields(await admin.get("/v1/crm/contacts?cursor=abc")) == ["query.cursor"]


async def test_a_contacts_dialogs_across_lines_newest_first(app: FastAPI, admin: AsyncClient):
    first = await client_dialog(app, admin, external_id="a", name="Ann", phone="+16502530000")
    second = await client_dialog(app, admin, external_id="b", phone="(650) 253-0000")
    await client_dialog(app, admin, external_id="c", phone="+16505550123")  # someone else
    found = ok(await admin.get("/v1/crm/contacts?phone=6502530000"))["items"]
    assert len(found) == 1 and found[0]["name"] == "Ann"
    assert len(found[0]["channels"]) == 2  # a chat on each line's channel

    dialogs = ok(await admin.get(f"/v1/crm/contacts/{found[0]['id']}/dialogs"))
    assert [d["id"] for d in dialogs["items"]] == [second, first]
    lines = {d["line_id"] for d in dialogs["items"]}
    assert len(lines) == 2
    assert {(d["channel_type"], d["status"]) for d in dialogs["items"]} == {("api", "new")}
    assert all(d["started_at"] for d in dialogs["items"])
    page = ok(await admin.get(f"/v1/crm/contacts/{found[0]['id']}/dialogs?limit=1"))
    assert [d["id"] for d in page["items"]] == [second] and page["next_cursor"]
    problem(await admin.get("/v1/crm/contacts/999/dialogs"), 404)


async def test_leads_are_created_listed_changed_and_deleted(admin: AsyncClient):
    olga = await operator(admin)
    contact = ok(await admin.post("/v1/crm/contacts", json={"name": "Ann"}), 201)
    lead = ok(
        await admin.post(
            "/v1/crm/leads",
            json={
                "title": "Ann wants a quote",
                "contact_id": contact["id"],
                "responsible_id": olga,
            },
        ),
        201,
    )
    assert (lead["status"], lead["source"], lead["dialog_id"]) == ("new", "manual", None)
    other = ok(await admin.post("/v1/crm/leads", json={"title": "Walk-in", "source": "phone"}), 201)
    listed = ok(await admin.get(f"/v1/crm/leads?contact_id={contact['id']}"))
    assert [x["id"] for x in listed["items"]] == [lead["id"]]
    everything = ok(await admin.get("/v1/crm/leads"))["items"]
    assert [x["id"] for x in everything] == [other["id"], lead["id"]]

    changed = ok(
        await admin.patch(
            f"/v1/crm/leads/{lead['id']}", json={"status": "in_progress", "responsible_id": None}
        )
    )
    assert (changed["status"], changed["responsible_id"]) == ("in_progress", None)
    assert ok(await admin.get(f"/v1/crm/leads/{lead['id']}")) == changed

    # A contact with leads is kept until they go.
    kept = problem(await admin.delete(f"/v1/crm/contacts/{contact['id']}"), 409)
    assert f"lead {lead['id']}" in kept["detail"]
    assert (await admin.delete(f"/v1/crm/leads/{lead['id']}")).status_code == 204
    problem(await admin.get(f"/v1/crm/leads/{lead['id']}"), 404)
    assert (await admin.delete(f"/v1/crm/contacts/{contact['id']}")).status_code == 204


async def test_bad_leads_are_refused_naming_the_field(admin: AsyncClient):
    for body, field in (
        ({"title": ""}, "title"),
        ({"title": "x", "status": "won"}, "status"),  # not settable at creation
    ):
        assert fields(await admin.post("/v1/crm/leads", json=body)) == [field], body
    naming_nothing: list[tuple[dict[str, Any], str]] = [
        ({"title": "x", "contact_id": 999}, "contact_id"),
        ({"title": "x", "responsible_id": 999}, "responsible_id"),
    ]
    for body, field in naming_nothing:
        nothing = problem(await admin.post("/v1/crm/leads", json=body), 404)
        assert [e["field"] for e in nothing["errors"]] == [field], body
    lead = ok(await admin.post("/v1/crm/leads", json={"title": "x"}), 201)
    changes: list[tuple[dict[str, Any], str]] = [
        ({"status": "won"}, "status"),
        ({"status": None}, "status"),
        ({"title": None}, "title"),
    ]
    for change, field in changes:
        patched = await admin.patch(f"/v1/crm/leads/{lead['id']}", json=change)
        assert fields(patched) == [field], change
    nobody = await admin.patch(f"/v1/crm/leads/{lead['id']}", json={"responsible_id": 999})
    assert [e["field"] for e in problem(nobody, 404)["errors"]] == ["responsible_id"]
    problem(await admin.get("/v1/crm/leads/999"), 404)
    assert fields(await admin.get("/v1/crm/leads?status=won")) == ["query.status"]


async def test_asking_for_a_dialogs_lead_records_one_request(app: FastAPI, admin: AsyncClient):
    await admin.post("/v1/lines", json={})  # line ids are not dialog ids below
    dialog_id = await client_dialog(app, admin, external_id="a")
    async with app.state.sessions() as session:  # an API chat is a messenger: owed already
        dialog = await session.get(Dialog, dialog_id)
        dialog.lead_requested = False
        await session.execute(delete(Outbox).where(Outbox.kind == "lead"))
        await session.commit()

    asked = await admin.post(f"/v1/dialogs/{dialog_id}/crm/lead")
    assert ok(asked, 202) == {"dialog_id": dialog_id, "lead": None, "requested": True}
    again = await admin.post(f"/v1/dialogs/{dialog_id}/crm/lead")
    assert ok(again, 202) == asked.json()
    assert await lead_rows(app, dialog_id) == 1

    async with app.state.sessions() as session:  # the worker made the lead
        session.add(Lead(title="From dialog", source="api", dialog_id=dialog_id))
        await session.commit()
    made = ok(await admin.post(f"/v1/dialogs/{dialog_id}/crm/lead"))
    assert (made["lead"]["title"], made["lead"]["dialog_id"]) == ("From dialog", dialog_id)
    assert await lead_rows(app, dialog_id) == 1
    lead_id = made["lead"]["id"]
    listed = ok(await admin.get(f"/v1/crm/leads?dialog_id={dialog_id}"))["items"]
    assert [x["id"] for x in listed] == [lead_id]
    problem(await admin.post("/v1/dialogs/999999/crm/lead"), 404)


async def test_who_may_read_and_change_the_crm(app: FastAPI, admin: AsyncClient):
    olga, ivan = await operator(admin, "Olga"), await operator(admin, "Ivan")
    contact = ok(await admin.post("/v1/crm/contacts", json={"name": "Ann"}), 201)
    lead = ok(await admin.post("/v1/crm/leads", json={"title": "x"}), 201)
    dialog_id = await client_dialog(app, admin, external_id="a")
    async with app.state.sessions() as session:
        dialog = await session.get(Dialog, dialog_id)
        dialog.operator_id = olga
        await session.commit()

    keys = {
        "olga": await key(admin, "operator", operator_id=olga),
        "ivan": await key(admin, "operator", operator_id=ivan),
        "supervisor": await key(admin, "supervisor"),
        "bot": await key(admin, "bot", bot_id=await bot(admin)),
    }
    async with (
        client_for(app, keys["olga"]) as as_olga,
        client_for(app, keys["ivan"]) as as_ivan,
        client_for(app, keys["supervisor"]) as as_supervisor,
        client_for(app, keys["bot"]) as as_bot,
        client_for(app, None) as anonymous,
    ):
        for path in ("/v1/crm/contacts", "/v1/crm/leads"):
            ok(await as_olga.get(path))  # her own clients only: tests/api/test_crm_privacy.py
            problem(await as_bot.get(path), 403)
            problem(await anonymous.get(path), 401)
        problem(await as_olga.get(f"/v1/crm/contacts/{contact['id']}"), 404)  # not her client
        ok(await as_supervisor.get(f"/v1/crm/contacts/{contact['id']}"))
        problem(await as_olga.post("/v1/crm/contacts", json={}), 403)
        problem(await as_olga.patch(f"/v1/crm/contacts/{contact['id']}", json={}), 403)
        problem(await as_olga.delete(f"/v1/crm/contacts/{contact['id']}"), 403)
        problem(await as_supervisor.delete(f"/v1/crm/contacts/{contact['id']}"), 403)
        problem(await as_olga.post("/v1/crm/leads", json={"title": "x"}), 403)
        problem(await as_olga.patch(f"/v1/crm/leads/{lead['id']}", json={"title": "y"}), 403)
        problem(await as_olga.delete(f"/v1/crm/leads/{lead['id']}"), 403)
        problem(await as_supervisor.delete(f"/v1/crm/leads/{lead['id']}"), 403)
        ok(await as_supervisor.post("/v1/crm/contacts", json={"name": "Bob"}), 201)
        ok(await as_supervisor.patch(f"/v1/crm/leads/{lead['id']}", json={"status": "junk"}))

        request = f"/v1/dialogs/{dialog_id}/crm/lead"
        problem(await as_ivan.post(request), 403)  # not his dialog
        problem(await as_bot.post(request), 403)
        assert (await as_olga.post(request)).status_code == 202
        assert (await as_supervisor.post(request)).status_code == 202
    assert await lead_rows(app, dialog_id) == 1
