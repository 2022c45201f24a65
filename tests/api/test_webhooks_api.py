"""Webhook subscriptions: CRUD, the secret shown once, validation naming the field, admins
only, and the delivery log."""

from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from core.events.models import Event, WebhookDelivery
from tests.conftest import client_for

PROBLEM_JSON = "application/problem+json"
URL = "https://hooks.example.com/openlines"


async def create(admin: AsyncClient, **body: Any) -> dict[str, Any]:
    response = await admin.post("/v1/webhooks", json={"url": URL, "events": ["*"], **body})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_a_subscription_is_created_read_changed_and_deleted(admin: AsyncClient):
    created = await create(admin, events=["dialog.closed", "message.created"])
    assert (created["url"], created["events"], created["active"]) == (
        URL,
        ["dialog.closed", "message.created"],
        True,
    )
    assert len(created["secret"]) >= 32  # generated
    hook = f"/v1/webhooks/{created['id']}"

    shown = (await admin.get(hook)).json()
    assert "secret" not in shown
    assert shown == {k: v for k, v in created.items() if k != "secret"}
    listing = await admin.get("/v1/webhooks")
    assert created["secret"] not in listing.text
    assert [h["id"] for h in listing.json()] == [created["id"]]

    changed = await admin.patch(
        hook,
        json={
            "url": "http://10.0.0.5:8080/in",
            "events": ["kpi.overdue"],
            "active": False,
            "secret": "s" * 16,
        },
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["url"], changed.json()["events"], changed.json()["active"]) == (
        "http://10.0.0.5:8080/in",
        ["kpi.overdue"],
        False,
    )
    assert "secret" not in changed.json()
    assert (await admin.get(hook)).json() == changed.json()

    assert (await admin.delete(hook)).status_code == 204
    assert (await admin.get(hook)).status_code == 404
    assert (await admin.patch(hook, json={"active": True})).status_code == 404
    assert (await admin.delete(hook)).status_code == 404
    assert (await admin.get("/v1/webhooks")).json() == []


async def test_a_given_secret_is_kept_and_repeated_types_collapse(admin: AsyncClient):
    created = await create(
        admin, secret="my-own-secret-123", events=["dialog.created", "dialog.created"]
    )
    assert created["secret"] == "my-own-secret-123"
    assert created["events"] == ["dialog.created"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "https://"}, "url"),
        ({"url": "example.com/hook"}, "url"),
        ({"url": "https://example.com/a b"}, "url"),
        ({"url": "https://example.com/\x01"}, "url"),
        ({"url": "https://example.com:99999/"}, "url"),
        ({"events": []}, "events"),
        ({"events": ["dialog.exploded"]}, "events[0]"),
        ({"events": ["*", "dialog.closed"]}, "events"),
        ({"secret": "short"}, "secret"),
        ({"secret": "x" * 129}, "secret"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_bad_subscriptions_are_refused_naming_the_field(
    admin: AsyncClient, body: dict[str, Any], field: str
):
    response = await admin.post("/v1/webhooks", json={"url": URL, "events": ["*"], **body})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert (await admin.get("/v1/webhooks")).json() == []


async def test_bad_changes_are_refused_naming_the_field(admin: AsyncClient):
    hook = f"/v1/webhooks/{(await create(admin))['id']}"
    for body, field in (
        ({"url": None}, "url"),
        ({"events": None}, "events"),
        ({"active": None}, "active"),
        ({"events": ["nope"]}, "events[0]"),
        ({"id": 5}, "id"),
    ):
        response = await admin.patch(hook, json=body)
        assert response.status_code == 422, (body, response.text)
        assert [e["field"] for e in response.json()["errors"]] == [field]
    assert (await admin.get(hook)).json()["events"] == ["*"]


async def test_only_admins_manage_webhooks(admin: AsyncClient, app: FastAPI):
    hook = f"/v1/webhooks/{(await create(admin))['id']}"
    supervisor = (await admin.post("/v1/api-keys", json={"role": "supervisor"})).json()["key"]
    async with client_for(app, supervisor) as as_supervisor:
        for method, path, body in (
            ("POST", "/v1/webhooks", {"url": URL, "events": ["*"]}),
            ("GET", "/v1/webhooks", None),
            ("GET", hook, None),
            ("PATCH", hook, {"active": False}),
            ("DELETE", hook, None),
            ("GET", f"{hook}/deliveries", None),
        ):
            response = await as_supervisor.request(method, path, json=body)
            assert response.status_code == 403, (method, path, response.text)
            assert response.headers["content-type"].startswith(PROBLEM_JSON)
    async with client_for(app, None) as anonymous:
        assert (await anonymous.get("/v1/webhooks")).status_code == 401
    assert (await admin.get(hook)).json()["active"] is True


async def test_the_delivery_log_lists_attempts_newest_first(admin: AsyncClient, app: FastAPI):
    hook = await create(admin)
    other = await create(admin)
    async with app.state.sessions() as session:
        events = [Event(type="dialog.created"), Event(type="message.created", data={"x": 1})]
        session.add_all(events)
        await session.flush()
        session.add_all(
            [
                WebhookDelivery(
                    webhook_id=hook["id"],
                    event_id=events[0].id,
                    status="delivered",
                    attempts=2,
                    last_status_code=200,
                ),
                WebhookDelivery(
                    webhook_id=hook["id"],
                    event_id=events[1].id,
                    status="pending",
                    attempts=1,
                    last_status_code=503,
                    last_error="HTTP 503 Service Unavailable",
                ),
                WebhookDelivery(webhook_id=other["id"], event_id=events[1].id),
            ]
        )
        await session.commit()
        event_ids = [e.id for e in events]

    log = await admin.get(f"/v1/webhooks/{hook['id']}/deliveries")
    assert log.status_code == 200, log.text
    items = log.json()["items"]
    assert [(d["event_id"], d["type"], d["status"], d["attempts"]) for d in items] == [
        (event_ids[1], "message.created", "pending", 1),
        (event_ids[0], "dialog.created", "delivered", 2),
    ]
    assert (items[0]["last_status_code"], items[0]["last_error"]) == (
        503,
        "HTTP 503 Service Unavailable",
    )
    assert log.json()["next_cursor"] is None

    first = (await admin.get(f"/v1/webhooks/{hook['id']}/deliveries?limit=1")).json()
    assert [d["event_id"] for d in first["items"]] == [event_ids[1]]
    rest = await admin.get(
        f"/v1/webhooks/{hook['id']}/deliveries?limit=1&cursor={first['next_cursor']}"
    )
    assert [d["event_id"] for d in rest.json()["items"]] == [event_ids[0]]
    delivered = await admin.get(f"/v1/webhooks/{hook['id']}/deliveries?status=delivered")
    assert [d["event_id"] for d in delivered.json()["items"]] == [event_ids[0]]
    bad = await admin.get(f"/v1/webhooks/{hook['id']}/deliveries?cursor=abc")
    assert [e["field"] for e in bad.json()["errors"]] == ["query.cursor"]
    assert (await admin.get("/v1/webhooks/999999/deliveries")).status_code == 404
