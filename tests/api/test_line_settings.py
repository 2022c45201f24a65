"""Line settings through the HTTP API, against the contract of spec/settings.md.

- a line with every setting changed is stored and returned as sent;
- a line created from ``{}`` carries every default of settings.md;
- each invalid value is refused with 422 problem details naming the dotted field, on POST and
  on PATCH (where the stored line stays unchanged), and values just inside a range are taken;
- PATCH merges nested groups and replaces lists whole.

Settings are addressed by dotted paths ("queue.handover_after"), like the API's error fields.
"""

from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response

from core.line_settings import LineSettings
from core.models import Line

PROBLEM_JSON = "application/problem+json"
MISSING = object()  # what `get` returns for a path that is not in the line at all


# --- helpers -----------------------------------------------------------------------------


def nested(path: str, value: Any) -> dict[str, Any]:
    """``nested("kpi.first_answer.limit", 5)`` -> ``{"kpi": {"first_answer": {"limit": 5}}}``."""
    *parents, last = path.split(".")
    body = {last: value}
    for key in reversed(parents):
        body = {key: body}
    return body


def get(line: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        if not isinstance(line, dict) or key not in line:
            return MISSING
        line = line[key]
    return line


def leaves(body: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Every (dotted path, value) of a body; lists are values, not walked into."""
    result = []
    for key, value in body.items():
        if isinstance(value, dict) and value:
            result += leaves(value, f"{prefix}{key}.")
        else:
            result.append((f"{prefix}{key}", value))
    return result


def with_leaves(line: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The line as it should be after merging ``body`` into it (groups merge, lists replace)."""
    result = dict(line)
    for key, value in body.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = with_leaves(result[key], value)
        else:
            result[key] = value
    return result


def member(kind: str, member_id: int) -> dict[str, Any]:
    return {"type": kind, "id": member_id}


def settings_of(line: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in line.items() if k not in ("id", "created_at", "updated_at")}


def ok(response: Response, status: int = 200) -> Any:
    """The JSON of an answer with the expected status (else the failure shows the body)."""
    assert response.status_code == status, response.text
    return response.json()


def assert_problem(response: Response, status: int) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert (problem["status"], bool(problem["detail"])) == (status, True)
    return problem


def assert_refused(response: Response, field: str, status: int = 422) -> None:
    problem = assert_problem(response, status)
    assert [error["field"] for error in problem["errors"]] == [field], problem


async def create_line(admin: AsyncClient, body: dict[str, Any]) -> Any:
    return ok(await admin.post("/v1/lines", json=body), 201)


async def read_line(admin: AsyncClient, line_id: int) -> Any:
    return ok(await admin.get(f"/v1/lines/{line_id}"))


async def create_operator(admin: AsyncClient, name: str) -> Any:
    return ok(await admin.post("/v1/operators", json={"name": name}), 201)["id"]


async def create_agreement(admin: AsyncClient) -> int:
    created = ok(
        await admin.post("/v1/agreements", json={"name": "Data", "text": "We keep your data."}),
        201,
    )
    agreement_id: int = created["id"]
    return agreement_id


async def create_bot(admin: AsyncClient) -> Any:
    return ok(await admin.post("/v1/bots", json={"name": "Greeter"}), 201)["id"]


async def create_quick_list(admin: AsyncClient) -> Any:
    return ok(await admin.post("/v1/quick-answer-lists", json={"name": "Replies"}), 201)["id"]


async def create_department(admin: AsyncClient, name: str, operator_ids: list[int]) -> Any:
    body = {"name": name, "operator_ids": operator_ids}
    return ok(await admin.post("/v1/departments", json=body), 201)["id"]


# --- the contract: defaults and a line with everything changed ---------------------------

SPEC_DEFAULTS = {
    "active": True,
    "language": "en",
    "queue.members": [],
    "queue.distribution": "evenly",
    "queue.handover_after": 60,
    "queue.check_availability": True,
    "queue.max_dialogs_per_operator": 0,
    "queue.not_counted": "answered",
    "queue.operator_display": "profile",
    "crm.enabled": True,
    "crm.chat_tracker": True,
    "crm.create": "lead",
    "crm.lead_source": "channel",
    "crm.forward_to_responsible": True,
    "crm.transfer_changes_responsible": True,
    "worktime.enabled": False,
    "worktime.timezone": "UTC",
    "worktime.from": "09:00",
    "worktime.to": "18:00",
    "worktime.days_off": ["sat", "sun"],
    "worktime.holidays": [],
    "worktime.off_hours_action": "text",
    "agreement.required": False,
    "agreement.agreement_id": None,
    "welcome.enabled": True,
    "welcome.each_session": False,
    "no_answer.after": 60,
    "no_answer.action": "none",
    "close.action": "text",
    "rating_wait": 600,
    "inactivity.after": 14400,
    "inactivity.action": "none",
    "quick_answers_list_id": None,
    "watch_typing": True,
    "rating.enabled": True,
    "rating.close_on_rating": False,
    "rating.time_limit": 0,
    "bot.enabled": False,
    "bot.bot_id": None,
    "bot.join": "first",
    "bot.handover_after": 600,
    "bot.leave": "queue",
    **{
        f"kpi.{item}.{key}": value
        for item in ("first_answer", "further_answer")
        for key, value in (("limit", 0), ("notify", False), ("recipients", []))
    },
}
# settings.md says only "a default" for these: some non-empty text.
DEFAULT_TEXTS = [
    "worktime.off_hours_text",
    "welcome.text",
    "no_answer.text",
    "close.text",
    "inactivity.text",
    *(
        f"rating.{texts}.{key}"
        for texts in ("widget_texts", "text_texts")
        for key in ("request", "like", "dislike")
    ),
    "kpi.first_answer.text",
    "kpi.further_answer.text",
]


def everything_changed(
    ann: int, bob: int, sales: int, agreement: int, bot: int, quick_list: int
) -> dict[str, Any]:
    """A line body with every setting set, each to a value other than its default."""
    return {
        "name": "Support",
        "active": False,
        "language": "de",
        "queue": {
            "members": [member("department", sales), member("operator", ann)],
            "distribution": "strictly",
            "handover_after": 300,
            "check_availability": False,
            "max_dialogs_per_operator": 5,
            "not_counted": "awaiting_client",
            "operator_display": "line",
            "operator_overrides": {
                str(ann): {"name": "A.", "position": "Lead", "avatar_url": None}
            },
            "hidden_identity": {
                "name": "Team",
                "position": "Help",
                "avatar_url": "https://t.test/a",
            },
        },
        "crm": {
            "enabled": False,
            "chat_tracker": False,
            "create": "none",
            "lead_source": "website",
            "forward_to_responsible": False,
            "transfer_changes_responsible": False,
        },
        "worktime": {
            "enabled": True,
            "timezone": "Europe/Berlin",
            "from": "08:30",
            "to": "17:45",
            "days_off": ["fri", "sun"],
            "holidays": ["01-01", "12-25"],
            "off_hours_action": "none",
            "off_hours_text": "We are closed.",
        },
        "agreement": {"required": True, "agreement_id": agreement},
        "welcome": {"enabled": False, "each_session": True, "text": "Hi!"},
        "no_answer": {"after": 120, "action": "text", "text": "Please wait."},
        "close": {"action": "none", "text": "Bye."},
        "rating_wait": 0,
        "inactivity": {"after": 7200, "action": "text", "text": "Closing now."},
        "quick_answers_list_id": quick_list,
        "watch_typing": False,
        "rating": {
            "enabled": False,
            "close_on_rating": True,
            "time_limit": 3600,
            "widget_texts": {"request": "Rate us", "like": "Yay", "dislike": "Sorry"},
            "text_texts": {"request": "1 or 0?", "like": "Thanks", "dislike": "Noted"},
        },
        "bot": {
            "enabled": True,
            "bot_id": bot,
            "join": "always",
            "handover_after": 0,
            "leave": "close",
        },
        "kpi": {
            "first_answer": {"limit": 60, "notify": True, "recipients": [bob], "text": "Late"},
            "further_answer": {"limit": 9, "notify": True, "recipients": [ann, bob], "text": "!"},
        },
    }


async def test_a_line_with_every_setting_changed_round_trips(admin):
    ann, bob = await create_operator(admin, "Ann"), await create_operator(admin, "Bob")
    sales = await create_department(admin, "Sales", [bob, ann])
    body = everything_changed(
        ann,
        bob,
        sales,
        await create_agreement(admin),
        await create_bot(admin),
        await create_quick_list(admin),
    )
    defaults = await create_line(admin, {})
    assert [path for path, value in leaves(body) if get(defaults, path) == value] == []

    created = await create_line(admin, body)

    assert settings_of(created) == body
    assert await read_line(admin, created["id"]) == created


async def test_a_line_created_empty_has_the_defaults_of_the_spec(admin):
    line = await create_line(admin, {})

    wrong = {
        path: get(line, path) for path, value in SPEC_DEFAULTS.items() if get(line, path) != value
    }
    assert wrong == {}
    assert line["name"] == f"Line {line['id']}"
    assert [path for path in DEFAULT_TEXTS if get(line, path) in (MISSING, None, "")] == []
    assert await read_line(admin, line["id"]) == line


async def test_a_line_stored_before_availability_checking_was_the_default_keeps_it_off(
    app: FastAPI, admin: AsyncClient
):
    """Settings are stored whole, so a new default reaches new lines only."""
    earlier = LineSettings.model_validate({"queue": {"check_availability": False}}).dump()
    async with app.state.sessions() as session, session.begin():
        line = Line(settings={**earlier, "name": "Sales"})
        session.add(line)
    await admin.patch(f"/v1/lines/{line.id}", json={"queue": {"handover_after": 120}})

    assert get(await read_line(admin, line.id), "queue.check_availability") is False
    assert get(await create_line(admin, {}), "queue.check_availability") is True


async def test_a_partial_group_keeps_the_other_defaults(admin):
    defaults = settings_of(await create_line(admin, {}))
    body = {"queue": {"distribution": "all"}, "rating": {"widget_texts": {"like": "Thanks!"}}}

    line = await create_line(admin, body)

    assert settings_of(line) == with_leaves(defaults, {**body, "name": f"Line {line['id']}"})


# --- validation ------------------------------------------------------------------------


def bad(path: str, value: Any, field: str | None = None) -> Any:
    """A body with ``value`` at ``path``, refused naming ``field`` (by default ``path`` itself)."""
    return pytest.param(nested(path, value), field or path, id=f"{path}={value!r:.40}")


RANGES = {  # field: (lowest allowed, highest allowed)
    "queue.handover_after": (60, 43200),
    "queue.max_dialogs_per_operator": (0, 1000),
    "no_answer.after": (60, 43200),
    "rating_wait": (0, 86400),
    "inactivity.after": (3600, 2678400),
    "rating.time_limit": (0, 2592000),
    "bot.handover_after": (0, 86400),
    "kpi.first_answer.limit": (0, 86400),
    "kpi.further_answer.limit": (0, 86400),
}
ENUMS = """queue.distribution queue.not_counted queue.operator_display crm.create bot.join
    bot.leave worktime.off_hours_action no_answer.action close.action inactivity.action""".split()
TEXTS_2000 = """worktime.off_hours_text welcome.text no_answer.text close.text inactivity.text
    rating.text_texts.request kpi.first_answer.text kpi.further_answer.text""".split()
NOBODY = 999  # no operator, department or bot has this id: the tables start empty

INVALID = [
    *(bad(path, value) for path, (low, high) in RANGES.items() for value in (low - 1, high + 1)),
    *(bad(path, "sometimes") for path in ENUMS),
    bad("queue.members", [member("team", 1)], "queue.members[0].type"),
    bad("worktime.days_off", ["saturday"], "worktime.days_off[0]"),
    bad("worktime.days_off", ["sat", "sat"]),
    # wrong types: strict, nothing is coerced
    bad("queue.handover_after", "60"),
    bad("queue.handover_after", True),
    bad("active", "yes"),
    bad("crm", "lead"),
    # unknown fields, top-level and nested (a typo is an error, not ignored)
    bad("colour", "red"),
    bad("queue.handover", 60),
    bad("kpi.first_answer.limit_s", 60),
    bad("worktime.from_", "10:00"),
    # worktime
    bad("worktime.from", "18:00", "worktime.to"),  # not before the default `to`
    pytest.param({"worktime": {"from": "10:00", "to": "09:59"}}, "worktime.to", id="to<from"),
    bad("worktime.from", "9:00"),
    bad("worktime.to", "24:00"),
    bad("worktime.to", "12:60"),
    bad("worktime.from", "0\u0669:00"),  # an Arabic-Indic digit 9
    bad("worktime.holidays", ["01-01", "02-30"], "worktime.holidays[1]"),
    bad("worktime.holidays", ["13-01"], "worktime.holidays[0]"),
    bad("worktime.holidays", ["1-1"], "worktime.holidays[0]"),
    bad("worktime.holidays", ["\u0661\u0662-25"], "worktime.holidays[0]"),
    bad("worktime.timezone", "Mars/Olympus_Mons"),
    # other strings
    bad("language", "xx"),
    bad("name", ""),
    bad("name", "x" * 256),
    bad("crm.lead_source", ""),
    bad("crm.lead_source", "x" * 65),
    *(bad(f"rating.widget_texts.{key}", "x" * 101) for key in ("request", "like", "dislike")),
    *(bad(path, "x" * 2001) for path in TEXTS_2000),
    # ids and references
    bad("quick_answers_list_id", 0),
    bad("agreement.required", True, "agreement.agreement_id"),
    bad("bot.enabled", True, "bot.bot_id"),
    bad("queue.members", [member("operator", 0)], "queue.members[0].id"),
    bad("queue.operator_overrides", {"abc": {"name": "A"}}, "queue.operator_overrides.abc"),
]
# Well formed, but naming something that is not there: 404 naming the setting.
NAMING_NOTHING = [
    bad("bot", {"enabled": True, "bot_id": NOBODY}, "bot.bot_id"),
    bad("queue.members", [member("operator", NOBODY)], "queue.members[0].id"),
    bad("queue.members", [member("department", NOBODY)], "queue.members[0].id"),
    bad("kpi.further_answer.recipients", [NOBODY], "kpi.further_answer.recipients[0]"),
    bad(
        "queue.operator_overrides",
        {str(NOBODY): {"name": "A"}},
        f"queue.operator_overrides.{NOBODY}",
    ),
]


@pytest.mark.parametrize(("body", "field"), INVALID)
async def test_an_invalid_new_line_is_refused_naming_the_field(admin, body, field):
    assert_refused(await admin.post("/v1/lines", json=body), field)

    assert (await admin.get("/v1/lines")).json() == []


@pytest.mark.parametrize(("body", "field"), INVALID)
async def test_an_invalid_patch_is_refused_and_changes_nothing(admin, body, field):
    line = await create_line(admin, {"name": "Before"})

    assert_refused(await admin.patch(f"/v1/lines/{line['id']}", json=body), field)

    assert await read_line(admin, line["id"]) == line


@pytest.mark.parametrize(("body", "field"), NAMING_NOTHING)
async def test_settings_naming_nothing_are_404_and_change_nothing(admin, body, field):
    line = await create_line(admin, {"name": "Before"})

    assert_refused(await admin.post("/v1/lines", json=body), field, 404)
    assert_refused(await admin.patch(f"/v1/lines/{line['id']}", json=body), field, 404)

    assert await read_line(admin, line["id"]) == line
    assert [found["id"] for found in (await admin.get("/v1/lines")).json()] == [line["id"]]


async def test_unknown_members_are_named_by_their_position(admin):
    ann = await create_operator(admin, "Ann")
    members = [member("operator", ann), member("operator", NOBODY)]

    response = await admin.post("/v1/lines", json=nested("queue.members", members))

    assert_refused(response, "queue.members[1].id", 404)


ACCEPTED = [
    *(
        pytest.param(path, bound, id=f"{path}={bound}")
        for path, bounds in RANGES.items()
        for bound in bounds
    ),
    pytest.param("name", "x" * 255, id="name-255"),
    pytest.param("crm.lead_source", "x" * 64, id="lead_source-64"),
    pytest.param("crm.lead_source", "x", id="lead_source-1"),
    pytest.param("rating.widget_texts.dislike", "x" * 100, id="widget-text-100"),
    pytest.param("welcome.text", "x" * 2000, id="text-2000"),
    pytest.param("welcome.text", "", id="text-empty"),
    pytest.param("worktime.holidays", ["02-29", "12-31"], id="holidays"),
    pytest.param("worktime.days_off", [], id="no-days-off"),
    pytest.param("worktime.from", "17:59", id="from-just-before-to"),
    pytest.param("worktime.to", "23:59", id="to-23:59"),
    pytest.param("worktime.timezone", "America/Argentina/Buenos_Aires", id="timezone"),
    pytest.param("language", "uk", id="language"),
    # JSON has one number type: a whole number written 600.0 is 600 (a string is not).
    pytest.param("rating_wait", 600.0, id="whole-number-as-float"),
]


@pytest.mark.parametrize(("path", "value"), ACCEPTED)
async def test_values_inside_the_range_are_taken_as_sent(admin, path, value):
    line = await create_line(admin, nested(path, value))

    assert get(line, path) == value
    assert get(await read_line(admin, line["id"]), path) == value


# --- PATCH -----------------------------------------------------------------------------

MERGING_PATCHES = [
    pytest.param({"queue": {"distribution": "all"}}, id="one-queue-field"),
    pytest.param({"kpi": {"first_answer": {"limit": 120}}}, id="two-levels-deep"),
    pytest.param({"worktime": {"from": "07:00"}, "rating_wait": 30}, id="alias-and-top-level"),
    pytest.param({"rating": {"widget_texts": {"like": "Merci"}}}, id="one-rating-text"),
    pytest.param({"name": "Renamed", "active": False}, id="top-level-only"),
]


@pytest.mark.parametrize("patch", MERGING_PATCHES)
async def test_patch_merges_into_groups_and_keeps_the_rest(admin, patch):
    ann, bob = await create_operator(admin, "Ann"), await create_operator(admin, "Bob")
    before = await create_line(
        admin,
        everything_changed(
            ann,
            bob,
            await create_department(admin, "S", []),
            await create_agreement(admin),
            await create_bot(admin),
            await create_quick_list(admin),
        ),
    )

    after = ok(await admin.patch(f"/v1/lines/{before['id']}", json=patch))

    assert settings_of(after) == with_leaves(settings_of(before), patch)
    assert await read_line(admin, before["id"]) == after


async def test_patch_replaces_lists_whole(admin):
    ann, bob = await create_operator(admin, "Ann"), await create_operator(admin, "Bob")
    before = await create_line(
        admin,
        everything_changed(
            ann,
            bob,
            await create_department(admin, "S", []),
            await create_agreement(admin),
            await create_bot(admin),
            await create_quick_list(admin),
        ),
    )
    patch = {
        "queue": {"members": [member("operator", bob)]},
        "worktime": {"days_off": ["sat"], "holidays": []},
        "kpi": {"further_answer": {"recipients": [bob]}},
    }

    after = ok(await admin.patch(f"/v1/lines/{before['id']}", json=patch))

    assert after["queue"]["members"] == [member("operator", bob)]
    assert settings_of(after) == with_leaves(settings_of(before), patch)


async def test_patch_checks_the_merged_line(admin):
    """A value valid alone can clash with a stored one: `from` 21:00 against the stored `to`."""
    line = await create_line(admin, {"worktime": {"from": "12:00", "to": "20:00"}})
    patch = nested("worktime.from", "21:00")

    assert_refused(await admin.patch(f"/v1/lines/{line['id']}", json=patch), "worktime.to")
    assert await read_line(admin, line["id"]) == line


async def test_an_unknown_line_is_404_with_problem_details(admin):
    assert_problem(await admin.patch("/v1/lines/999", json={"name": "Ghost"}), 404)
    assert_problem(await admin.get("/v1/lines/999"), 404)


async def test_an_id_past_any_row_is_invalid_input_not_a_failed_query(admin):
    """PostgreSQL's integer ends at 2**31 - 1: a larger reference is refused as invalid."""
    body = {"agreement": {"required": False, "agreement_id": 10033931169}}
    response = await admin.post("/v1/lines", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "agreement.agreement_id"
