"""Who may call what: bearer keys, their roles, and how keys are issued, stored and revoked."""

import pytest
from sqlalchemy import select

from core.models import ApiKey
from tests.conftest import client_for

PROBLEM_JSON = "application/problem+json"


async def create_operator(admin, name):
    response = await admin.post("/v1/operators", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def create_line(admin):
    response = await admin.post("/v1/lines", json={})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def issue_key(admin, role, **binding):
    """Issue a key through the API; returns the whole create answer (``key`` among it)."""
    response = await admin.post("/v1/api-keys", json={"role": role, **binding})
    assert response.status_code == 201, response.text
    return response.json()


async def key_for_role(admin, role):
    """A plain key of the role, bound to a fresh operator or to bot 1 where the role needs it."""
    if role == "operator":
        return (await issue_key(admin, "operator", operator_id=await create_operator(admin, "Op")))[
            "key"
        ]
    if role == "bot":
        return (await issue_key(admin, "bot", bot_id=1))["key"]
    return (await issue_key(admin, role))["key"]


def configuration_calls(line_id, operator_id):
    """One valid request to each admin-only route, with the status an admin gets."""
    return [
        ("POST", "/v1/lines", {"name": "Sales"}, 201),
        ("PATCH", f"/v1/lines/{line_id}", {"name": "Support"}, 200),
        ("POST", "/v1/operators", {"name": "Bob"}, 201),
        ("POST", "/v1/api-keys", {"role": "operator", "operator_id": operator_id}, 201),
        ("POST", f"/v1/lines/{line_id}/channels", {"type": "api"}, 201),
    ]


def assert_problem(response, status):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.json()["status"] == status


# --- 401: no usable credentials ----------------------------------------------------------


async def test_missing_authorization_is_401_with_a_bearer_challenge(app):
    async with client_for(app, None) as anonymous:
        response = await anonymous.get("/v1/lines")
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Authorization" in response.json()["detail"]


@pytest.mark.parametrize(
    "header",
    [
        "Bearer not-a-key",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "test-bootstrap-admin-key",  # the right key without the scheme
        "Bearer clé".encode("latin-1"),  # not ASCII
    ],
)
async def test_unusable_authorization_is_401(app, header):
    async with client_for(app, None) as client:
        response = await client.get("/v1/lines", headers={"Authorization": header})
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_revoked_key_is_401(app, admin):
    issued = await issue_key(admin, "supervisor")
    async with client_for(app, issued["key"]) as supervisor:
        assert (await supervisor.get("/v1/lines")).status_code == 200
        assert (await admin.delete(f"/v1/api-keys/{issued['id']}")).status_code == 204
        assert_problem(await supervisor.get("/v1/lines"), 401)
    listed = {key["id"]: key for key in (await admin.get("/v1/api-keys")).json()}
    assert listed[issued["id"]]["revoked_at"] is not None


# --- 403: known caller, wrong role -------------------------------------------------------


@pytest.mark.parametrize("role", ["supervisor", "operator"])
async def test_only_admins_configure(app, admin, role):
    line_id = await create_line(admin)
    operator_id = await create_operator(admin, "Ann")
    async with client_for(app, await key_for_role(admin, role)) as caller:
        for method, path, body, _ in configuration_calls(line_id, operator_id):
            response = await caller.request(method, path, json=body)
            assert_problem(response, 403)
            assert role in response.json()["detail"], f"{method} {path}"
    # Nothing was changed by the refused calls.
    lines = (await admin.get("/v1/lines")).json()
    assert [line["name"] for line in lines] == [f"Line {line_id}"]
    assert (await admin.get(f"/v1/lines/{line_id}/channels")).json() == []


async def test_admin_key_configures(admin):
    line_id = await create_line(admin)
    operator_id = await create_operator(admin, "Ann")
    for method, path, body, status in configuration_calls(line_id, operator_id):
        response = await admin.request(method, path, json=body)
        assert response.status_code == status, f"{method} {path}: {response.text}"


@pytest.mark.parametrize("role", ["supervisor", "operator"])
async def test_supervisors_and_operators_read_lines_and_operators(app, admin, role):
    line_id = await create_line(admin)
    operator_id = await create_operator(admin, "Ann")
    async with client_for(app, await key_for_role(admin, role)) as reader:
        for path in ("/v1/lines", f"/v1/lines/{line_id}", "/v1/operators"):
            assert (await reader.get(path)).status_code == 200, path
        response = await reader.get(f"/v1/operators/{operator_id}")
    assert response.status_code == 200
    assert response.json()["name"] == "Ann"


async def test_bot_key_cannot_read_configuration(app, admin):
    line_id = await create_line(admin)
    async with client_for(app, await key_for_role(admin, "bot")) as bot:
        for path in ("/v1/lines", f"/v1/lines/{line_id}", "/v1/operators"):
            assert_problem(await bot.get(path), 403)


# --- issuing keys -----------------------------------------------------------------------


async def test_issued_key_works_and_is_shown_only_once(app, admin):
    issued = await issue_key(admin, "admin")
    assert issued["role"] == "admin"
    assert issued["key"].startswith(issued["prefix"])
    async with client_for(app, issued["key"]) as new_admin:
        assert (await new_admin.post("/v1/operators", json={"name": "Eve"})).status_code == 201
    listing = await admin.get("/v1/api-keys")
    assert [key["id"] for key in listing.json()] == [issued["id"]]
    assert "key" not in listing.json()[0]
    assert issued["key"] not in listing.text


async def test_stored_key_is_hashed(app, admin):
    issued = await issue_key(admin, "supervisor")
    async with app.state.sessions() as session:
        row = await session.scalar(select(ApiKey).where(ApiKey.id == issued["id"]))
    assert row is not None
    stored = [str(getattr(row, column.key)) for column in ApiKey.__table__.columns]
    assert all(issued["key"] not in value for value in stored), stored


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "operator"}, "operator_id"),
        ({"role": "bot"}, "bot_id"),
        ({"role": "admin", "operator_id": 1}, "operator_id"),
        ({"role": "root"}, "role"),
        ({"role": "admin", "scope": "all"}, "scope"),
        ({"role": "bot", "bot_id": 2**31}, "bot_id"),  # past the 32-bit id columns
        ({"role": "operator", "operator_id": 2**31}, "operator_id"),
    ],
)
async def test_api_key_body_is_validated(admin, body, field):
    response = await admin.post("/v1/api-keys", json=body)
    assert_problem(response, 422)
    assert [error["field"] for error in response.json()["errors"]] == [field]


async def test_api_key_for_unknown_operator_is_422(admin):
    response = await admin.post("/v1/api-keys", json={"role": "operator", "operator_id": 9999})
    assert_problem(response, 422)
    assert response.json()["errors"][0]["field"] == "operator_id"
    assert "9999" in response.json()["detail"]
    assert (await admin.get("/v1/api-keys")).json() == []


async def test_revoking_unknown_key_is_404(admin):
    assert_problem(await admin.delete("/v1/api-keys/9999"), 404)


# --- an operator key changes its own state only -----------------------------------------


async def test_operator_sets_own_presence_and_workday_only(app, admin):
    me = await create_operator(admin, "Ann")
    other = await create_operator(admin, "Bob")
    key = (await issue_key(admin, "operator", operator_id=me))["key"]
    async with client_for(app, key) as operator:
        presence = await operator.put(f"/v1/operators/{me}/presence", json={"status": "online"})
        workday = await operator.put(f"/v1/operators/{me}/workday", json={"state": "started"})
        assert presence.status_code == 200, presence.text
        assert workday.status_code == 200, workday.text
        assert_problem(
            await operator.put(f"/v1/operators/{other}/presence", json={"status": "online"}), 403
        )
        assert_problem(
            await operator.put(f"/v1/operators/{other}/workday", json={"state": "started"}), 403
        )
    mine = (await admin.get(f"/v1/operators/{me}")).json()
    theirs = (await admin.get(f"/v1/operators/{other}")).json()
    assert (mine["presence"], mine["workday"]) == ("online", "started")
    assert (theirs["presence"], theirs["workday"]) == ("offline", "ended")
