"""Who may call what: bearer keys, their roles, and how keys are issued, stored and revoked."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from core.models import ApiKey, Bot, Operator
from tests.conftest import ADMIN_KEY, client_for

PROBLEM_JSON = "application/problem+json"


async def create_operator(admin, name):
    response = await admin.post("/v1/operators", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def create_line(admin):
    response = await admin.post("/v1/lines", json={})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def create_bot(admin, name="Helper"):
    response = await admin.post("/v1/bots", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def issue_key(admin, role, **binding):
    """Issue a key through the API; returns the whole create answer (``key`` among it)."""
    response = await admin.post("/v1/api-keys", json={"role": role, **binding})
    assert response.status_code == 201, response.text
    return response.json()


async def key_for_role(admin, role):
    """A plain key of the role, bound to a fresh operator or bot where the role needs it."""
    if role == "operator":
        return (await issue_key(admin, "operator", operator_id=await create_operator(admin, "Op")))[
            "key"
        ]
    if role == "bot":
        return (await issue_key(admin, "bot", bot_id=await create_bot(admin)))["key"]
    return (await issue_key(admin, role))["key"]


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
        ADMIN_KEY,  # the right key without the scheme
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


async def test_firing_an_operator_kills_their_keys_and_rehiring_does_not_revive_them(app, admin):
    ann = await create_operator(admin, "Ann")
    issued = await issue_key(admin, "operator", operator_id=ann)
    async with client_for(app, issued["key"]) as as_ann:
        assert (await as_ann.get("/v1/lines")).status_code == 200
        fired = await admin.patch(f"/v1/operators/{ann}", json={"fired": True})
        assert fired.status_code == 200, fired.text
        assert_problem(await as_ann.get("/v1/lines"), 401)
        rehired = await admin.patch(f"/v1/operators/{ann}", json={"fired": False})
        assert rehired.status_code == 200, rehired.text
        assert_problem(await as_ann.get("/v1/lines"), 401)
    listed = {key["id"]: key for key in (await admin.get("/v1/api-keys")).json()}
    assert listed[issued["id"]]["revoked_at"] is not None


async def test_deleting_a_bot_kills_its_keys(app, admin):
    bot = await create_bot(admin)
    issued = await issue_key(admin, "bot", bot_id=bot)
    async with client_for(app, issued["key"]) as as_bot:
        assert (await as_bot.get("/v1/dialogs")).status_code == 200
        assert (await admin.delete(f"/v1/bots/{bot}")).status_code == 204
        assert_problem(await as_bot.get("/v1/dialogs"), 401)


async def test_a_key_whose_owner_is_gone_fails_even_unrevoked(app, admin):
    """Revocation is checked on every request: an owner fired or deleted by any path (here
    straight in the database) takes the key with it."""
    ann = await create_operator(admin, "Ann")
    bot = await create_bot(admin)
    keys = [
        (await issue_key(admin, "operator", operator_id=ann))["key"],
        (await issue_key(admin, "bot", bot_id=bot))["key"],
    ]
    async with app.state.sessions() as session:
        operator, helper = await session.get(Operator, ann), await session.get(Bot, bot)
        operator.fired = True
        helper.deleted_at = datetime.now(UTC)
        await session.commit()
    for key in keys:
        async with client_for(app, key) as caller:
            assert_problem(await caller.get("/v1/dialogs"), 401)


# --- 403: known caller, wrong role -------------------------------------------------------

# Every route only an admin may call (``Admin`` in api/routes/): method, path, a valid body,
# and the status the admin gets. Paths are the OpenAPI templates; ``configure`` fills the
# ids in (in bodies too: a value ``"{line_id}"`` becomes that id). Presence and workday are
# not here: an operator sets their own (tested below).
ADMIN_ONLY = [
    ("POST", "/v1/operators", {"name": "Bob"}, 201),
    ("PATCH", "/v1/operators/{operator_id}", {"name": "Anna"}, 200),
    ("PATCH", "/v1/operators/{operator_id}", {"fired": True}, 200),
    ("PATCH", "/v1/operators/{operator_id}", {"vacation_until": "2099-01-01T00:00:00Z"}, 200),
    ("POST", "/v1/departments", {"name": "Sales"}, 201),
    ("PATCH", "/v1/departments/{department_id}", {"name": "Billing", "operator_ids": []}, 200),
    ("DELETE", "/v1/departments/{department_id}", None, 204),
    ("POST", "/v1/lines", {"name": "Sales"}, 201),
    ("PATCH", "/v1/lines/{line_id}", {"name": "Support"}, 200),
    ("DELETE", "/v1/lines/{line_id}", None, 204),
    ("POST", "/v1/lines/{line_id}/channels", {"type": "api"}, 201),
    ("GET", "/v1/lines/{line_id}/channels", None, 200),
    ("PATCH", "/v1/channels/{channel_id}", {"line_id": "{line_id}"}, 200),
    ("POST", "/v1/channels/{channel_id}/rotate-secret", None, 200),
    ("DELETE", "/v1/channels/{channel_id}", None, 204),
    ("POST", "/v1/api-keys", {"role": "admin"}, 201),
    ("GET", "/v1/api-keys", None, 200),
    ("DELETE", "/v1/api-keys/{key_id}", None, 204),
    ("POST", "/v1/agreements", {"name": "Privacy", "text": "We keep your messages."}, 201),
    ("PATCH", "/v1/agreements/{agreement_id}", {"text": "We keep them a year."}, 200),
    ("DELETE", "/v1/agreements/{agreement_id}", None, 204),
    ("POST", "/v1/bots", {"name": "Helper"}, 201),
    ("PATCH", "/v1/bots/{bot_id}", {"name": "Assistant"}, 200),
    ("DELETE", "/v1/bots/{bot_id}", None, 204),
    ("POST", "/v1/webhooks", {"url": "https://hooks.example/in", "events": ["*"]}, 201),
    ("GET", "/v1/webhooks", None, 200),
    ("GET", "/v1/webhooks/{webhook_id}", None, 200),
    ("PATCH", "/v1/webhooks/{webhook_id}", {"active": False}, 200),
    ("DELETE", "/v1/webhooks/{webhook_id}", None, 204),
    ("GET", "/v1/webhooks/{webhook_id}/deliveries", None, 200),
    ("POST", "/v1/webhooks/{webhook_id}/rotate-secret", None, 200),
    ("DELETE", "/v1/crm/contacts/{contact_id}", None, 204),
    ("DELETE", "/v1/crm/leads/{lead_id}", None, 204),
    # No delivery failed here: the admin gets past the role check to the 404.
    ("POST", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", None, 404),
]


def call_id(call):
    method, path, body, _ = call
    fields = "+".join(body) if body and method == "PATCH" else ""
    return f"{method} {path} {fields}".strip()


async def configure(admin):
    """One of each configured thing, for the admin-only routes to act on; their ids."""
    ann = await create_operator(admin, "Ann")
    line_id = await create_line(admin)
    other_line = await create_line(admin)
    channel = await admin.post(f"/v1/lines/{other_line}/channels", json={"type": "api"})
    department = await admin.post(
        "/v1/departments", json={"name": "Support", "operator_ids": [ann]}
    )
    agreement = await admin.post("/v1/agreements", json={"name": "Terms", "text": "Be nice."})
    webhook = await admin.post(
        "/v1/webhooks", json={"url": "https://hooks.example/old", "events": ["*"]}
    )
    for response in (channel, department, agreement, webhook):
        assert response.status_code == 201, response.text
    return {
        "operator_id": ann,
        "line_id": line_id,
        "other_line_id": other_line,
        "channel_id": channel.json()["id"],
        "department_id": department.json()["id"],
        "agreement_id": agreement.json()["id"],
        "webhook_id": webhook.json()["id"],
        "bot_id": await create_bot(admin, "Greeter"),
        "key_id": (await issue_key(admin, "supervisor"))["id"],
        "delivery_id": 999999,
        "contact_id": (await admin.post("/v1/crm/contacts", json={"name": "Ann"})).json()["id"],
        "lead_id": (await admin.post("/v1/crm/leads", json={"title": "Ann"})).json()["id"],
    }


async def configuration(admin, ids):
    """Everything an admin can read of the configuration."""
    paths = [
        "/v1/operators",
        "/v1/departments",
        "/v1/lines",
        "/v1/lines/{line_id}/channels",
        "/v1/lines/{other_line_id}/channels",
        "/v1/api-keys",
        "/v1/agreements",
        "/v1/agreements/{agreement_id}/versions",
        "/v1/bots",
        "/v1/webhooks",
    ]
    seen = {}
    for path in paths:
        response = await admin.get(path.format(**ids))
        seen[path] = (response.status_code, response.json())
    return seen


@pytest.mark.parametrize(
    ("method", "path", "body", "admin_status"),
    ADMIN_ONLY,
    ids=[call_id(call) for call in ADMIN_ONLY],
)
async def test_only_admins_configure(app, admin, method, path, body, admin_status):
    """Supervisors, operators and bots get 403 naming their role and change nothing; the
    operator and supervisor keys belong to the very operator a PATCH changes."""
    ids = await configure(admin)
    ann = ids["operator_id"]
    keys = {
        "supervisor": (await issue_key(admin, "supervisor", operator_id=ann))["key"],
        "operator": (await issue_key(admin, "operator", operator_id=ann))["key"],
        "bot": (await issue_key(admin, "bot", bot_id=ids["bot_id"]))["key"],
    }
    url = path.format(**ids)
    if body is not None:
        body = {k: ids[v[1:-1]] if str(v).startswith("{") else v for k, v in body.items()}
    before = await configuration(admin, ids)
    for role, key in keys.items():
        async with client_for(app, key) as caller:
            response = await caller.request(method, url, json=body)
        assert_problem(response, 403)
        assert f"the {role} role" in response.json()["detail"], role
    assert await configuration(admin, ids) == before

    response = await admin.request(method, url, json=body)
    assert response.status_code == admin_status, response.text


@pytest.mark.parametrize("role", ["supervisor", "bot"])
async def test_only_admins_and_the_operator_set_presence_and_workday(app, admin, role):
    ann = await create_operator(admin, "Ann")
    async with client_for(app, await key_for_role(admin, role)) as caller:
        presence = await caller.put(f"/v1/operators/{ann}/presence", json={"status": "online"})
        workday = await caller.put(f"/v1/operators/{ann}/workday", json={"state": "started"})
    assert_problem(presence, 403)
    assert_problem(workday, 403)
    unchanged = (await admin.get(f"/v1/operators/{ann}")).json()
    assert (unchanged["presence"], unchanged["workday"]) == ("offline", "ended")
    presence = await admin.put(f"/v1/operators/{ann}/presence", json={"status": "online"})
    workday = await admin.put(f"/v1/operators/{ann}/workday", json={"state": "started"})
    assert (presence.status_code, workday.status_code) == (200, 200)


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
        for path in ("/v1/lines", f"/v1/lines/{line_id}", "/v1/operators", "/v1/bots"):
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


async def test_api_key_for_unknown_operator_is_404_naming_the_field(admin):
    response = await admin.post("/v1/api-keys", json={"role": "operator", "operator_id": 9999})
    assert_problem(response, 404)
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


async def test_me_says_whose_key_it_is(app, admin):
    ann = await create_operator(admin, "Ann")
    issued = await issue_key(admin, "operator", operator_id=ann)
    async with client_for(app, issued["key"]) as as_ann:
        mine = await as_ann.get("/v1/me")
    bootstrap = await admin.get("/v1/me")

    assert mine.json() == {
        "role": "operator",
        "key_id": issued["id"],
        "operator_id": ann,
        "operator_name": "Ann",
        "bot_id": None,
        "bot_name": None,
    }
    assert (bootstrap.json()["role"], bootstrap.json()["key_id"]) == ("admin", None)
