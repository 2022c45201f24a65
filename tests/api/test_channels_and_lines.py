"""Channels per line, the line limit, deleting lines, malformed bodies, service endpoints."""

import pytest
from sqlalchemy import select

from core.models import Channel, Chat, Dialog
from tests.conftest import ADMIN_KEY, client_for

PROBLEM_JSON = "application/problem+json"


async def create_line(admin, **settings):
    response = await admin.post("/v1/lines", json=settings)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def add_channel(admin, line_id, channel_type="api"):
    return await admin.post(f"/v1/lines/{line_id}/channels", json={"type": channel_type})


def assert_problem(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.json()["status"] == status
    return response.json()


async def insert_dialogs(app, line_id, channel_id, *statuses):
    """Dialog rows as the workflows would project them, one chat each; returns their ids."""
    async with app.state.sessions() as session:
        dialogs = []
        for index, status in enumerate(statuses):
            chat = Chat(channel_id=channel_id, line_id=line_id, external_id=f"client-{index}")
            session.add(chat)
            await session.flush()
            dialogs.append(Dialog(line_id=line_id, chat_id=chat.id, status=status))
        session.add_all(dialogs)
        await session.commit()
        return [dialog.id for dialog in dialogs]


# --- channels ---------------------------------------------------------------------------


async def test_one_channel_of_each_type_per_line(admin):
    first_line, second_line = await create_line(admin), await create_line(admin)
    created = await add_channel(admin, first_line)
    assert created.status_code == 201, created.text
    assert created.json()["type"] == "api"
    assert created.json()["line_id"] == first_line
    assert len(created.json()["secret"]) >= 32

    problem = assert_problem(await add_channel(admin, first_line), 409)
    assert "already has" in problem["detail"]

    elsewhere = await add_channel(admin, second_line)
    assert elsewhere.status_code == 201, elsewhere.text
    assert elsewhere.json()["secret"] != created.json()["secret"]
    listed = (await admin.get(f"/v1/lines/{first_line}/channels")).json()
    assert [channel["id"] for channel in listed] == [created.json()["id"]]
    assert "secret" not in listed[0]


@pytest.mark.parametrize("channel_type", ["sms", "email"])
async def test_unsupported_channel_types_are_422(admin, channel_type):
    line_id = await create_line(admin)
    problem = assert_problem(await add_channel(admin, line_id, channel_type), 422)
    assert [error["field"] for error in problem["errors"]] == ["type"]
    assert (await admin.get(f"/v1/lines/{line_id}/channels")).json() == []


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "config.url"),
        ({"url": "ftp://hooks.example/in"}, "config.url"),
        ({"url": "https://hooks.example/in", "token": "x"}, "config.token"),
    ],
)
async def test_a_webhook_channel_needs_an_http_url_and_nothing_else(admin, config, field):
    line_id = await create_line(admin)
    body = {"type": "webhook", "config": config}
    problem = assert_problem(await admin.post(f"/v1/lines/{line_id}/channels", json=body), 422)
    assert [error["field"] for error in problem["errors"]] == [field]
    assert (await admin.get(f"/v1/lines/{line_id}/channels")).json() == []


async def test_a_webhook_channel_is_connected_with_its_url(admin):
    line_id = await create_line(admin)
    body = {"type": "webhook", "config": {"url": "https://hooks.example/in"}}
    created = await admin.post(f"/v1/lines/{line_id}/channels", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["config"] == {"url": "https://hooks.example/in"}
    assert len(created.json()["secret"]) >= 32
    listed = (await admin.get(f"/v1/lines/{line_id}/channels")).json()
    assert [(c["type"], c["config"]) for c in listed] == [("webhook", body["config"])]


async def test_unknown_line_or_channel_is_404(admin):
    assert_problem(await add_channel(admin, 9999), 404)
    assert_problem(await admin.delete("/v1/channels/9999"), 404)
    assert_problem(await admin.delete(f"/v1/channels/{2**31}"), 404)  # past the id columns
    assert_problem(await admin.get(f"/v1/lines/{2**31}"), 404)


async def test_deleted_channel_frees_its_type(admin):
    line_id = await create_line(admin)
    old = (await add_channel(admin, line_id)).json()
    assert (await admin.delete(f"/v1/channels/{old['id']}")).status_code == 204
    assert (await admin.get(f"/v1/lines/{line_id}/channels")).json() == []
    assert_problem(await admin.delete(f"/v1/channels/{old['id']}"), 404)

    new = await add_channel(admin, line_id)
    assert new.status_code == 201, new.text
    assert new.json()["id"] != old["id"]
    assert new.json()["secret"] != old["secret"]


# --- the line limit ---------------------------------------------------------------------


async def test_line_limit(make_app):
    limited = await make_app(max_lines=2)
    async with client_for(limited, ADMIN_KEY) as admin:
        first = await create_line(admin)
        await create_line(admin)
        problem = assert_problem(await admin.post("/v1/lines", json={}), 409)
        assert "2" in problem["detail"]
        assert len((await admin.get("/v1/lines")).json()) == 2

        assert (await admin.delete(f"/v1/lines/{first}")).status_code == 204
        assert (await admin.post("/v1/lines", json={})).status_code == 201


# --- deleting lines ---------------------------------------------------------------------


async def test_delete_line_without_open_dialogs(app, admin):
    line_id = await create_line(admin)
    channel_id = (await add_channel(admin, line_id)).json()["id"]
    await insert_dialogs(app, line_id, channel_id, "closed")
    assert (await admin.delete(f"/v1/lines/{line_id}")).status_code == 204
    assert_problem(await admin.get(f"/v1/lines/{line_id}"), 404)
    assert (await admin.get("/v1/lines")).json() == []
    assert_problem(await admin.delete(f"/v1/lines/{line_id}"), 404)


async def test_delete_line_with_open_dialogs_needs_force(app, admin):
    line_id = await create_line(admin)
    other_line = await create_line(admin)
    channel_id = (await add_channel(admin, line_id)).json()["id"]
    other_channel = (await add_channel(admin, other_line)).json()["id"]
    open_id, closed_id = await insert_dialogs(app, line_id, channel_id, "queued", "closed")
    [elsewhere_id] = await insert_dialogs(app, other_line, other_channel, "queued")

    problem = assert_problem(await admin.delete(f"/v1/lines/{line_id}"), 409)
    assert "1 open dialog" in problem["detail"]
    assert "force=true" in problem["detail"]
    assert (await admin.get(f"/v1/lines/{line_id}")).status_code == 200

    assert (await admin.delete(f"/v1/lines/{line_id}", params={"force": "true"})).status_code == 204
    assert_problem(await admin.get(f"/v1/lines/{line_id}"), 404)
    assert_problem(await admin.get(f"/v1/lines/{line_id}/channels"), 404)
    assert_problem(await admin.delete(f"/v1/channels/{channel_id}"), 404)

    async with app.state.sessions() as session:
        dialogs = {d.id: d for d in await session.scalars(select(Dialog))}
        channel = await session.get(Channel, channel_id)
    assert (dialogs[open_id].status, dialogs[open_id].close_reason) == ("closed", "line_deleted")
    assert dialogs[open_id].closed_at is not None
    assert dialogs[closed_id].close_reason is None  # already closed: left as it was
    assert dialogs[elsewhere_id].status == "queued"  # another line: untouched
    assert channel is not None and channel.deleted_at is not None


# --- malformed bodies -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/lines"),
        ("PATCH", "/v1/lines/{line_id}"),
        ("POST", "/v1/lines/{line_id}/channels"),
        ("POST", "/v1/operators"),
        ("POST", "/v1/departments"),
        ("POST", "/v1/api-keys"),
    ],
)
@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "Sales",',
        b"not json",
        b'{"name": "\xff"}',  # not UTF-8
        b"[" * 30_000 + b"]" * 30_000,  # nested deeper than the parser goes (within 64 KiB)
        b"[1, 2]",
        b'"text"',
        b"",
    ],
    ids=["truncated", "not-json", "not-utf8", "deep", "array", "string", "empty"],
)
async def test_malformed_body_is_422(admin, method, path, body):
    line_id = await create_line(admin)
    response = await admin.request(
        method,
        path.format(line_id=line_id),
        content=body,
        headers={"Content-Type": "application/json"},
    )
    problem = assert_problem(response, 422)
    assert [error["field"] for error in problem["errors"]] == ["body"]


# --- service endpoints ------------------------------------------------------------------


async def test_healthz(app):
    async with client_for(app, None) as anonymous:
        response = await anonymous.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_metrics_are_prometheus_text_labelled_by_route(admin):
    line_id = await create_line(admin)
    assert (await admin.get(f"/v1/lines/{line_id}")).status_code == 200
    response = await admin.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE openlines_http_requests_total counter" in response.text
    assert 'route="/v1/lines/{line_id}"' in response.text
    assert f'route="/v1/lines/{line_id}"' not in response.text
