"""Operators (profile, firing, vacation, presence, workday) and departments."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

PROBLEM_JSON = "application/problem+json"


async def create_operator(admin, name, **fields):
    response = await admin.post("/v1/operators", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def assert_invalid(response, field):
    """A 422 problem-details answer whose errors name exactly ``field``."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert [error["field"] for error in response.json()["errors"]] == [field]


def assert_not_found(response):
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)


# --- operators --------------------------------------------------------------------------


async def test_create_get_and_list_operators(admin):
    ann = await create_operator(
        admin,
        "Ann",
        email="ann@example.com",
        position="Senior agent",
        avatar_url="https://example.com/ann.png",
    )
    assert ann["email"] == "ann@example.com"
    assert ann["position"] == "Senior agent"
    assert ann["avatar_url"] == "https://example.com/ann.png"
    # A new operator is working, not on vacation, offline and has not started the day.
    assert (ann["fired"], ann["fired_at"], ann["on_vacation"]) == (False, None, False)
    assert (ann["presence"], ann["workday"]) == ("offline", "ended")

    bob = await create_operator(admin, "Bob")
    assert (await admin.get(f"/v1/operators/{ann['id']}")).json() == ann
    listed = (await admin.get("/v1/operators")).json()
    assert [operator["name"] for operator in listed] == ["Ann", "Bob"]
    assert listed[1] == bob


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "Ann", "email": "not-an-email"}, "email"),
        ({"name": "Ann", "avatar_url": "ftp://example.com/a.png"}, "avatar_url"),
        ({"name": "Ann", "nickname": "A"}, "nickname"),
        ({"name": "A\u0000nn"}, "name"),  # PostgreSQL cannot store NUL
        ({"name": "Ann", "position": "Lead\u0000"}, "position"),
    ],
)
async def test_create_operator_refuses_bad_input(admin, body, field):
    assert_invalid(await admin.post("/v1/operators", json=body), field)
    assert (await admin.get("/v1/operators")).json() == []


async def test_fire_and_rehire(admin):
    operator_id = (await create_operator(admin, "Ann"))["id"]
    before = datetime.now(UTC)
    fired = await admin.patch(f"/v1/operators/{operator_id}", json={"fired": True})
    assert fired.status_code == 200, fired.text
    assert fired.json()["fired"] is True
    fired_at = datetime.fromisoformat(fired.json()["fired_at"])
    assert before - timedelta(seconds=1) <= fired_at <= datetime.now(UTC)
    # Firing again keeps the original time; rehiring clears it.
    again = await admin.patch(f"/v1/operators/{operator_id}", json={"fired": True})
    assert datetime.fromisoformat(again.json()["fired_at"]) == fired_at
    rehired = await admin.patch(f"/v1/operators/{operator_id}", json={"fired": False})
    assert (rehired.json()["fired"], rehired.json()["fired_at"]) == (False, None)


async def test_vacation(admin):
    operator_id = (await create_operator(admin, "Ann"))["id"]
    path = f"/v1/operators/{operator_id}"
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)
    # Any offset is accepted; the answer is the same instant.
    local = until.astimezone(timezone(timedelta(hours=2))).isoformat()
    on_leave = await admin.patch(path, json={"vacation_until": local})
    assert on_leave.status_code == 200, on_leave.text
    assert datetime.fromisoformat(on_leave.json()["vacation_until"]) == until
    assert on_leave.json()["on_vacation"] is True
    assert (await admin.get(path)).json()["on_vacation"] is True

    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert (await admin.patch(path, json={"vacation_until": past})).json()["on_vacation"] is False

    back = await admin.patch(path, json={"vacation_until": None})
    assert (back.json()["vacation_until"], back.json()["on_vacation"]) == (None, False)


@pytest.mark.parametrize(
    "until",
    [
        "2030-01-01T09:00:00",  # naive: no zone
        "0001-01-01T00:00:00+14:00",  # before the first storable time once in UTC
        "9999-12-31T23:59:59-14:00",  # after the last one
        "next week",
    ],
)
async def test_bad_vacation_time_is_refused(admin, until):
    operator_id = (await create_operator(admin, "Ann"))["id"]
    response = await admin.patch(f"/v1/operators/{operator_id}", json={"vacation_until": until})
    assert_invalid(response, "vacation_until")
    assert (await admin.get(f"/v1/operators/{operator_id}")).json()["vacation_until"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": None}, "name"),
        ({"fired": None}, "fired"),  # not a quiet way to rehire
        ({"fired": "maybe"}, "fired"),
        ({"salary": 1}, "salary"),
    ],
)
async def test_patch_refuses_bad_input(admin, body, field):
    operator_id = (await create_operator(admin, "Ann"))["id"]
    await admin.patch(f"/v1/operators/{operator_id}", json={"fired": True})
    assert_invalid(await admin.patch(f"/v1/operators/{operator_id}", json=body), field)
    # Nothing changed: still named Ann, still fired.
    current = (await admin.get(f"/v1/operators/{operator_id}")).json()
    assert (current["name"], current["fired"]) == ("Ann", True)


async def test_patch_changes_only_given_fields(admin):
    ann = await create_operator(admin, "Ann", email="ann@example.com")
    response = await admin.patch(f"/v1/operators/{ann['id']}", json={"position": "Lead"})
    assert response.status_code == 200, response.text
    assert response.json() == {**ann, "position": "Lead"}


async def test_presence_and_workday(admin):
    operator_id = (await create_operator(admin, "Ann"))["id"]
    path = f"/v1/operators/{operator_id}"
    for status in ("online", "offline", "online"):
        response = await admin.put(f"{path}/presence", json={"status": status})
        assert response.status_code == 200, response.text
        assert response.json()["presence"] == status
    for state in ("started", "paused", "ended", "started"):
        response = await admin.put(f"{path}/workday", json={"state": state})
        assert response.status_code == 200, response.text
        assert response.json()["workday"] == state
    current = (await admin.get(path)).json()
    assert (current["presence"], current["workday"]) == ("online", "started")


async def test_bad_presence_and_workday_values(admin):
    operator_id = (await create_operator(admin, "Ann"))["id"]
    path = f"/v1/operators/{operator_id}"
    assert_invalid(await admin.put(f"{path}/presence", json={"status": "away"}), "status")
    assert_invalid(await admin.put(f"{path}/presence", json={}), "status")
    assert_invalid(await admin.put(f"{path}/workday", json={"state": "lunch"}), "state")
    assert_invalid(
        await admin.put(f"{path}/workday", json={"state": "started", "until": "5pm"}), "until"
    )
    current = (await admin.get(path)).json()
    assert (current["presence"], current["workday"]) == ("offline", "ended")


@pytest.mark.parametrize("operator_id", [9999, 2**31, 2**63])  # and past the id columns
async def test_unknown_operator_is_404(admin, operator_id):
    path = f"/v1/operators/{operator_id}"
    assert_not_found(await admin.get(path))
    assert_not_found(await admin.patch(path, json={"fired": True}))
    assert_not_found(await admin.put(f"{path}/presence", json={"status": "online"}))
    assert_not_found(await admin.put(f"{path}/workday", json={"state": "started"}))
    assert str(operator_id) in (await admin.get(path)).json()["detail"]


# --- departments ------------------------------------------------------------------------


async def test_department_keeps_operator_order(admin):
    ann = (await create_operator(admin, "Ann"))["id"]
    bob = (await create_operator(admin, "Bob"))["id"]
    created = await admin.post(
        "/v1/departments", json={"name": "Sales", "operator_ids": [bob, ann]}
    )
    assert created.status_code == 201, created.text
    assert created.json()["operator_ids"] == [bob, ann]
    fetched = (await admin.get(f"/v1/departments/{created.json()['id']}")).json()
    assert (fetched["name"], fetched["operator_ids"]) == ("Sales", [bob, ann])


async def test_department_with_unknown_operator_is_404_naming_it(admin):
    ann = (await create_operator(admin, "Ann"))["id"]
    response = await admin.post(
        "/v1/departments", json={"name": "Sales", "operator_ids": [ann, 9999]}
    )
    assert response.status_code == 404, response.text
    assert [error["field"] for error in response.json()["errors"]] == ["operator_ids[1]"]
    assert "9999" in response.json()["detail"]
    too_big = await admin.post("/v1/departments", json={"name": "Sales", "operator_ids": [2**31]})
    assert_invalid(too_big, "operator_ids[0]")
    assert (await admin.get("/v1/departments")).json() == []


async def test_department_in_a_queue_cannot_be_deleted(admin):
    ann = (await create_operator(admin, "Ann"))["id"]
    body = {"name": "Sales", "operator_ids": [ann]}
    department = (await admin.post("/v1/departments", json=body)).json()
    member = {"type": "department", "id": department["id"]}
    line = (await admin.post("/v1/lines", json={"queue": {"members": [member]}})).json()
    refused = await admin.delete(f"/v1/departments/{department['id']}")
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"].startswith(PROBLEM_JSON)
    assert str(line["id"]) in refused.json()["detail"]
    assert (await admin.get(f"/v1/departments/{department['id']}")).status_code == 200

    emptied = await admin.patch(f"/v1/lines/{line['id']}", json={"queue": {"members": []}})
    assert emptied.status_code == 200, emptied.text
    assert (await admin.delete(f"/v1/departments/{department['id']}")).status_code == 204
    assert_not_found(await admin.get(f"/v1/departments/{department['id']}"))
