"""Operators see only their own clients in the CRM; deletions are admins' and recorded;
a deleted contact is not rebuilt; two contacts become one only on someone's word, and a
merge can be undone."""

from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select

from core.events.models import Event
from core.models import Chat, Dialog
from tests.api.test_crm_api import client_dialog, key, ok, operator, problem
from tests.conftest import client_for


async def give(app: FastAPI, dialog_id: int, operator_id: int) -> None:
    """The dialog becomes the operator's, as an accept makes it."""
    async with app.state.sessions() as session:
        dialog = await session.get(Dialog, dialog_id)
        assert dialog is not None
        dialog.operator_id = operator_id
        await session.commit()


async def contact_of(app: FastAPI, dialog_id: int) -> int:
    async with app.state.sessions() as session:
        dialog = await session.get(Dialog, dialog_id)
        assert dialog is not None and dialog.contact_id is not None
        contact_id: int = dialog.contact_id
        return contact_id


async def test_an_operator_reads_only_the_contacts_and_leads_of_their_own_clients(
    app: FastAPI, admin: AsyncClient
) -> None:
    olga = await operator(admin, "Olga")
    mine = await client_dialog(app, admin, external_id="c-mine", phone="+16502530000")
    theirs = await client_dialog(app, admin, external_id="c-theirs", phone="+16502530001")
    await give(app, mine, olga)
    my_contact, their_contact = await contact_of(app, mine), await contact_of(app, theirs)
    lead = ok(
        await admin.post("/v1/crm/leads", json={"title": "x", "contact_id": their_contact}), 201
    )
    async with client_for(app, await key(admin, "operator", operator_id=olga)) as as_olga:
        listed = ok(await as_olga.get("/v1/crm/contacts"))["items"]
        found = ok(await as_olga.get("/v1/crm/contacts", params={"phone": "650 253 0001"}))
        other = await as_olga.get(f"/v1/crm/contacts/{their_contact}")
        dialogs = await as_olga.get(f"/v1/crm/contacts/{their_contact}/dialogs")
        leads = ok(await as_olga.get("/v1/crm/leads"))["items"]
        their_lead = await as_olga.get(f"/v1/crm/leads/{lead['id']}")
        own = ok(await as_olga.get(f"/v1/crm/contacts/{my_contact}"))

    assert [c["id"] for c in listed] == [my_contact]
    assert found["items"] == []  # a phone search finds nobody else's client
    assert problem(other, 404)["detail"] == f"contact {their_contact} does not exist"
    problem(dialogs, 404)
    assert leads == []
    problem(their_lead, 404)
    assert own["phones"] == ["+16502530000"]


async def test_only_admins_delete_and_each_deletion_names_who(
    app: FastAPI, admin: AsyncClient
) -> None:
    dialog_id = await client_dialog(app, admin, external_id="c-1", name="Ann", phone="+16502530000")
    contact = await contact_of(app, dialog_id)
    async with client_for(app, await key(admin, "supervisor")) as as_supervisor:
        problem(await as_supervisor.delete(f"/v1/crm/contacts/{contact}"), 403)

    assert (await admin.delete(f"/v1/crm/contacts/{contact}")).status_code == 204

    async with app.state.sessions() as session:
        event = await session.scalar(select(Event).where(Event.type == "contact.deleted"))
        chat = await session.scalar(select(Chat).where(Chat.external_id == "c-1"))
    assert event is not None and event.data == {"contact_id": contact, "by": "bootstrap admin key"}
    assert chat is not None
    assert (chat.contact_id, chat.name, chat.phone, chat.email) == (None, None, None, None)
    # The client's next visit makes a new contact that knows nothing of the old one.
    again = await client_dialog(app, admin, external_id="c-1")
    fresh = ok(await admin.get(f"/v1/crm/contacts/{await contact_of(app, again)}"))
    assert (fresh["name"], fresh["phones"]) == (None, [])


async def test_an_operator_merges_two_of_their_clients_and_a_supervisor_undoes_it(
    app: FastAPI, admin: AsyncClient
) -> None:
    olga = await operator(admin, "Olga")
    first = await client_dialog(app, admin, external_id="tg-ann", name="Ann", phone="+16502530000")
    second = await client_dialog(app, admin, external_id="wa-ann", email="ann@example.com")
    stranger = await client_dialog(app, admin, external_id="bob", phone="+16502530009")
    for dialog_id in (first, second):
        await give(app, dialog_id, olga)
    kept, merged = await contact_of(app, first), await contact_of(app, second)
    olga_key = await key(admin, "operator", operator_id=olga)
    path = f"/v1/crm/contacts/{kept}/merge"
    async with client_for(app, olga_key) as as_olga:
        not_hers = await as_olga.post(path, json={"contact_id": await contact_of(app, stranger)})
        done = ok(await as_olga.post(path, json={"contact_id": merged}))
        twice = await as_olga.post(path, json={"contact_id": merged})
        undo_by_operator = await as_olga.post(f"/v1/crm/merges/{done['id']}/undo")

    assert [e["field"] for e in problem(not_hers, 404)["errors"]] == ["contact_id"]
    assert (done["kept_id"], done["merged_id"]) == (kept, merged)
    assert done["merged_by"].startswith(f"operator {olga}")
    problem(twice, 409)
    problem(undo_by_operator, 403)
    joined = ok(await admin.get(f"/v1/crm/contacts/{kept}"))
    assert (joined["phones"], joined["emails"]) == (["+16502530000"], ["ann@example.com"])
    assert await contact_of(app, second) == kept

    async with client_for(app, await key(admin, "supervisor")) as as_supervisor:
        undone = ok(await as_supervisor.post(f"/v1/crm/merges/{done['id']}/undo"))
        again = await as_supervisor.post(f"/v1/crm/merges/{done['id']}/undo")
    assert undone["undone_at"] is not None
    problem(again, 409)
    apart: dict[str, Any] = ok(await admin.get(f"/v1/crm/contacts/{merged}"))
    assert (apart["merged_into_id"], apart["emails"]) == (None, ["ann@example.com"])
    assert ok(await admin.get(f"/v1/crm/contacts/{kept}"))["emails"] == []
    assert await contact_of(app, second) == merged


async def test_a_contact_that_was_merged_can_be_deleted_with_its_merge_records(
    app: FastAPI, admin: AsyncClient
) -> None:
    kept = ok(await admin.post("/v1/crm/contacts", json={"name": "Ann"}), 201)["id"]
    other = ok(await admin.post("/v1/crm/contacts", json={"name": "Ann B"}), 201)["id"]
    merge = ok(await admin.post(f"/v1/crm/contacts/{kept}/merge", json={"contact_id": other}))

    assert (await admin.delete(f"/v1/crm/contacts/{kept}")).status_code == 204

    problem(await admin.get(f"/v1/crm/contacts/{other}"), 404)
    problem(await admin.post(f"/v1/crm/merges/{merge['id']}/undo"), 404)


async def test_a_lead_for_a_merged_contact_is_409_naming_the_contact_it_lives_on_in(
    admin: AsyncClient,
) -> None:
    kept = ok(await admin.post("/v1/crm/contacts", json={"name": "Ann"}), 201)["id"]
    other = ok(await admin.post("/v1/crm/contacts", json={"name": "Ann B"}), 201)["id"]
    ok(await admin.post(f"/v1/crm/contacts/{kept}/merge", json={"contact_id": other}))

    refused = problem(
        await admin.post("/v1/crm/leads", json={"title": "Ann", "contact_id": other}), 409
    )

    assert refused["errors"] == [
        {"field": "contact_id", "message": f"contact {other} was merged into contact {kept}"}
    ]
    assert ok(await admin.get("/v1/crm/leads"))["items"] == []


async def test_merging_into_an_id_past_any_row_is_404(admin: AsyncClient) -> None:
    """PostgreSQL refuses to compare an integer column with it; that must not become a 500."""
    other = ok(await admin.post("/v1/crm/contacts", json={"name": "Ann"}), 201)["id"]

    problem(
        await admin.post("/v1/crm/contacts/1099511627776/merge", json={"contact_id": other}), 404
    )
