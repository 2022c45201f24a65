"""Notifications: each key sees its own operator's (a supervisor bound to its operator record
too), admins see anyone's, newest first, unread only on request, and marking read."""

from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient

from core.events.models import Notification
from tests.conftest import client_for

PROBLEM_JSON = "application/problem+json"


async def operator(admin: AsyncClient, name: str) -> int:
    response = await admin.post("/v1/operators", json={"name": name})
    assert response.status_code == 201, response.text
    operator_id: int = response.json()["id"]
    return operator_id


async def key(admin: AsyncClient, role: str, **binding: Any) -> str:
    response = await admin.post("/v1/api-keys", json={"role": role, **binding})
    assert response.status_code == 201, response.text
    plain: str = response.json()["key"]
    return plain


async def notify(app: FastAPI, recipient_id: int, *texts: str) -> list[int]:
    """Notifications written as the KPI alerts are: straight to the table, oldest first."""
    async with app.state.sessions() as session:
        rows = [
            Notification(
                recipient_id=recipient_id, kind="kpi.overdue", text=text, key=f"{text}-{i}"
            )
            for i, text in enumerate(texts)
        ]
        session.add_all(rows)
        await session.commit()
        return [row.id for row in rows]


def texts(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["text"] for item in response.json()["items"]]


async def test_each_key_sees_only_its_own_operators_notifications(admin: AsyncClient, app: FastAPI):
    ann, bob = await operator(admin, "Ann"), await operator(admin, "Bob")
    await notify(app, ann, "ann 1", "ann 2")
    await notify(app, bob, "bob 1")
    ann_key = await key(admin, "operator", operator_id=ann)
    boss_key = await key(admin, "supervisor", operator_id=bob)  # a supervisor with a record
    async with client_for(app, ann_key) as as_ann, client_for(app, boss_key) as as_boss:
        assert texts(await as_ann.get("/v1/notifications")) == ["ann 2", "ann 1"]
        assert texts(await as_boss.get("/v1/notifications")) == ["bob 1"]
        assert texts(await as_boss.get(f"/v1/notifications?recipient_id={bob}")) == ["bob 1"]
        refused = await as_ann.get(f"/v1/notifications?recipient_id={bob}")
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith(PROBLEM_JSON)
    assert texts(await admin.get("/v1/notifications")) == ["bob 1", "ann 2", "ann 1"]
    assert texts(await admin.get(f"/v1/notifications?recipient_id={ann}")) == ["ann 2", "ann 1"]


async def test_keys_without_an_operator_have_no_notifications(admin: AsyncClient, app: FastAPI):
    ann = await operator(admin, "Ann")
    await notify(app, ann, "ann 1")
    unbound = await key(admin, "supervisor")
    helper = await admin.post("/v1/bots", json={"name": "Helper"})
    assert helper.status_code == 201, helper.text
    bot = await key(admin, "bot", bot_id=helper.json()["id"])
    async with client_for(app, unbound) as as_unbound, client_for(app, bot) as as_bot:
        response = await as_unbound.get("/v1/notifications")
        assert response.status_code == 403, response.text
        assert "operator_id" in response.json()["detail"]
        assert (await as_bot.get("/v1/notifications")).status_code == 403
    async with client_for(app, None) as anonymous:
        assert (await anonymous.get("/v1/notifications")).status_code == 401


async def test_pages_and_unread_only(admin: AsyncClient, app: FastAPI):
    ann = await operator(admin, "Ann")
    ids = await notify(app, ann, "1", "2", "3")
    ann_key = await key(admin, "operator", operator_id=ann)
    async with client_for(app, ann_key) as as_ann:
        first = await as_ann.get("/v1/notifications?limit=2")
        assert texts(first) == ["3", "2"]
        rest = await as_ann.get(f"/v1/notifications?limit=2&cursor={first.json()['next_cursor']}")
        assert (texts(rest), rest.json()["next_cursor"]) == (["1"], None)

        read = await as_ann.post(f"/v1/notifications/{ids[1]}/read")
        assert read.status_code == 200, read.text
        assert (read.json()["id"], read.json()["recipient_id"]) == (ids[1], ann)
        read_at = read.json()["read_at"]
        assert read_at is not None
        again = await as_ann.post(f"/v1/notifications/{ids[1]}/read")
        assert again.json()["read_at"] == read_at  # the first reading is kept

        assert texts(await as_ann.get("/v1/notifications?unread=true")) == ["3", "1"]
        assert texts(await as_ann.get("/v1/notifications")) == ["3", "2", "1"]
        bad = await as_ann.get("/v1/notifications?cursor=x")
        assert [e["field"] for e in bad.json()["errors"]] == ["query.cursor"]


async def test_only_the_recipient_or_an_admin_marks_read(admin: AsyncClient, app: FastAPI):
    ann, bob = await operator(admin, "Ann"), await operator(admin, "Bob")
    (for_ann,) = await notify(app, ann, "ann 1")
    bob_key = await key(admin, "operator", operator_id=bob)
    async with client_for(app, bob_key) as as_bob:
        assert (await as_bob.post(f"/v1/notifications/{for_ann}/read")).status_code == 403
        assert (await as_bob.post("/v1/notifications/999999/read")).status_code == 404
    assert (await admin.get("/v1/notifications?unread=true")).json()["items"][0]["id"] == for_ann
    marked = await admin.post(f"/v1/notifications/{for_ann}/read")
    assert marked.status_code == 200
    assert marked.json()["read_at"] is not None
    assert (await admin.get("/v1/notifications?unread=true")).json()["items"] == []


async def test_supervisor_keys_may_be_bound_to_an_operator_but_not_admin_keys(
    admin: AsyncClient,
):
    ann = await operator(admin, "Ann")
    bound = await admin.post("/v1/api-keys", json={"role": "supervisor", "operator_id": ann})
    assert (bound.status_code, bound.json()["operator_id"]) == (201, ann)
    for body in (
        {"role": "admin", "operator_id": ann},
        {"role": "bot", "bot_id": 1, "operator_id": ann},
    ):
        refused = await admin.post("/v1/api-keys", json=body)
        assert refused.status_code == 422, refused.text
        assert [e["field"] for e in refused.json()["errors"]] == ["operator_id"]
    missing = await admin.post("/v1/api-keys", json={"role": "supervisor", "operator_id": 999999})
    assert missing.status_code == 404
