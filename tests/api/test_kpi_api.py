"""KPIs: each dialog's answer times in the lists, an operator's KPIs and a line's statistics.

The rows are written straight into the database, as the dialog workflow would project them, so
every number below is known exactly. The window is 1 May 2024 (UTC); the seeded data puts rows
just outside it on both sides, and averages on .5 so rounding half up is checked.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from core.crm.models import Lead
from core.models import Chat, Dialog, Message
from tests.conftest import client_for

PROBLEM_JSON = "application/problem+json"
WINDOW = {"from": "2024-05-01T00:00:00Z", "to": "2024-05-02T00:00:00Z"}


def at(day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2024, 5, day, hour, minute, second, tzinfo=UTC)


def before_window(hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 4, 30, hour, minute, tzinfo=UTC)


@dataclass
class Seeded:
    line: int
    other_line: int
    ann: int
    bob: int
    carl: int
    dialogs: dict[str, int]


async def post(admin: AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await admin.post(path, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


# Each dialog: line ("L" or "L2"), owner, status, started, closed, and its KPI columns
# (first_answer_s, total_answer_s, answers, max_answer_s, kpi_overdue).
DIALOGS: dict[str, tuple[str, str, str, datetime, datetime | None, tuple[Any, ...]]] = {
    # Ann's, in the window
    "d1": ("L", "ann", "closed", at(1, 10), at(1, 11), (30, 101, 3, 60, 1)),
    "d2": ("L", "ann", "accepted", at(1, 12), None, (2, 5, 2, 3, 0)),
    "d3": ("L", "ann", "client_waiting", at(1, 13), None, (None, 0, 0, None, 2)),
    "d7": ("L2", "ann", "accepted", at(1, 15), None, (41, 41, 1, 41, 0)),
    # Ann's, started a second before the window (closed inside it) and at its very end
    "d4": ("L", "ann", "closed", datetime(2024, 4, 30, 23, 59, 59, tzinfo=UTC), at(1, 9),
           (100, 100, 1, 100, 1)),
    "d5": ("L", "ann", "closed", at(2), at(2, 1), (500, 500, 1, 500, 1)),
    # Bob's, in the window, marked spam
    "d6": ("L", "bob", "spam", at(1, 14), at(1, 14, 5), (60, 60, 1, 60, 0)),
}  # fmt: skip

# (dialog, author, operator, created_at)
MESSAGES: list[tuple[str, str, str | None, datetime]] = [
    ("d1", "client", None, at(1, 10)),
    ("d1", "operator", "ann", at(1, 10, 1)),
    ("d1", "system", "ann", at(1, 10, 2)),  # a notice about Ann is not a message of hers
    ("d4", "client", None, before_window(23)),
    ("d4", "operator", "ann", before_window(23, 30)),
    ("d4", "operator", "ann", at(1, 8)),  # a dialog started earlier, answered in the window
    ("d6", "operator", "ann", at(1, 14, 1)),  # written by Ann before the dialog went to Bob
    ("d6", "operator", "bob", at(1, 14, 2)),
    ("d2", "bot", None, at(1, 12)),
    ("d2", "system", None, at(1, 12, 0, 1)),
    ("d5", "operator", "ann", at(2)),  # the window's end is exclusive
    ("d7", "client", None, at(1, 15)),
    ("d7", "operator", "ann", at(1, 15, 1)),
]

# (dialog or None, created_at)
LEADS: list[tuple[str | None, datetime]] = [
    ("d1", at(1, 10, 30)),
    ("d4", before_window(23, 59)),
    ("d6", datetime(2024, 5, 1, 23, 59, 59, 999999, tzinfo=UTC)),
    ("d7", at(1, 16)),  # another line
    (None, at(1, 17)),  # no dialog
]


@pytest.fixture
async def seeded(app: FastAPI, admin: AsyncClient) -> Seeded:
    operators = {
        name: (await post(admin, "/v1/operators", {"name": name.title()}))["id"]
        for name in ("ann", "bob", "carl")
    }
    lines = {name: (await post(admin, "/v1/lines", {"name": name}))["id"] for name in ("L", "L2")}
    channels = {
        name: (await post(admin, f"/v1/lines/{line_id}/channels", {"type": "api"}))["id"]
        for name, line_id in lines.items()
    }
    async with app.state.sessions() as session:
        dialogs: dict[str, Dialog] = {}
        for name, (line, owner, status, started, closed, kpi) in DIALOGS.items():
            chat = Chat(channel_id=channels[line], line_id=lines[line], external_id=name)
            session.add(chat)
            await session.flush()
            first, total, answers, longest, overdue = kpi
            dialogs[name] = Dialog(
                line_id=lines[line],
                chat_id=chat.id,
                status=status,
                operator_id=operators[owner],
                holder_id=None if closed else operators[owner],
                started_at=started,
                closed_at=closed,
                first_answer_s=first,
                total_answer_s=total,
                answers=answers,
                max_answer_s=longest,
                kpi_overdue=overdue,
            )
            session.add(dialogs[name])
        await session.flush()
        for index, (dialog, author, operator, created) in enumerate(MESSAGES):
            session.add(
                Message(
                    chat_id=dialogs[dialog].chat_id,
                    dialog_id=dialogs[dialog].id,
                    author=author,
                    operator_id=operators[operator] if operator else None,
                    external_id=f"m-{index}" if author == "client" else None,
                    text=f"message {index}",
                    created_at=created,
                )
            )
        for index, (source, created) in enumerate(LEADS):
            session.add(
                Lead(
                    title=f"Lead {index}",
                    source="openlines",
                    dialog_id=dialogs[source].id if source else None,
                    created_at=created,
                )
            )
        await session.commit()
        ids = {name: dialog.id for name, dialog in dialogs.items()}
    return Seeded(
        lines["L"], lines["L2"], operators["ann"], operators["bob"], operators["carl"], ids
    )


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def numbers(body: dict[str, Any], *dropped: str) -> dict[str, Any]:
    """The answer without the echoed id and window, which each test checks on its own."""
    return {k: v for k, v in body.items() if k not in ("operator_id", "line_id", *dropped)}


def assert_invalid(response: Any, field: str) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body: dict[str, Any] = response.json()
    assert [e["field"] for e in body["errors"]] == [field]
    return body


# --- operators ----------------------------------------------------------------------------


async def test_operator_kpi_counts_their_dialogs_started_in_the_window(
    admin: AsyncClient, seeded: Seeded
):
    ann = ok(await admin.get(f"/v1/operators/{seeded.ann}/kpi", params=WINDOW))
    assert (ann["operator_id"], ann["from"], ann["to"]) == (
        seeded.ann,
        "2024-05-01T00:00:00Z",
        "2024-05-02T00:00:00Z",
    )
    # d1, d2, d3 and d7 (on another line); d4 started a second early, d5 at the window's end.
    assert numbers(ann, "from", "to") == {
        "dialogs": 4,
        "closed": 1,  # d1
        "answered": 3,  # d1, d2, d7
        "messages": 4,  # Ann's replies in d1, d4, d6 (Bob's now) and d7 within the window
        "first_answer_avg_s": 24,  # (30 + 2 + 41) / 3 = 24.33
        "answer_avg_s": 25,  # (101 + 5 + 0 + 41) / (3 + 2 + 0 + 1) = 24.5, half up
        "answer_max_s": 60,
        "overdue": 2,  # d1, d3
    }

    bob = ok(await admin.get(f"/v1/operators/{seeded.bob}/kpi", params=WINDOW))
    assert numbers(bob, "from", "to") == {
        "dialogs": 1,
        "closed": 1,  # spam is closed too
        "answered": 1,
        "messages": 1,
        "first_answer_avg_s": 60,
        "answer_avg_s": 60,
        "answer_max_s": 60,
        "overdue": 0,
    }

    everything = ok(await admin.get(f"/v1/operators/{seeded.ann}/kpi"))
    assert (everything["from"], everything["to"]) == (None, None)
    assert numbers(everything, "from", "to") == {
        "dialogs": 6,
        "closed": 3,  # d1, d4, d5
        "answered": 5,
        "messages": 6,
        "first_answer_avg_s": 135,  # (30 + 2 + 41 + 100 + 500) / 5 = 134.6
        "answer_avg_s": 93,  # (147 + 100 + 500) / 8 = 93.4
        "answer_max_s": 500,
        "overdue": 4,
    }

    nobody = ok(await admin.get(f"/v1/operators/{seeded.carl}/kpi", params=WINDOW))
    assert numbers(nobody, "from", "to") == {
        "dialogs": 0,
        "closed": 0,
        "answered": 0,
        "messages": 0,
        "first_answer_avg_s": None,
        "answer_avg_s": None,
        "answer_max_s": None,
        "overdue": 0,
    }


async def test_the_window_starts_inclusive_ends_exclusive_and_honours_zones(
    admin: AsyncClient, seeded: Seeded
):
    kpi = f"/v1/operators/{seeded.ann}/kpi"
    in_moscow = {"from": "2024-05-01T03:00:00+03:00", "to": "2024-05-01T21:00:00-03:00"}
    same = ok(await admin.get(kpi, params=in_moscow))  # httpx sends '+' as %2B
    assert same == ok(await admin.get(kpi, params=WINDOW))

    from_end = ok(await admin.get(kpi, params={"from": "2024-05-02T00:00:00Z"}))
    assert (from_end["from"], from_end["to"]) == ("2024-05-02T00:00:00Z", None)
    assert numbers(from_end, "from", "to") == {  # d5 alone, and Ann's reply at midnight
        "dialogs": 1,
        "closed": 1,
        "answered": 1,
        "messages": 1,
        "first_answer_avg_s": 500,
        "answer_avg_s": 500,
        "answer_max_s": 500,
        "overdue": 1,
    }
    until_end = ok(await admin.get(kpi, params={"to": "2024-05-02T00:00:00Z"}))
    assert (until_end["dialogs"], until_end["messages"]) == (5, 5)  # all but d5 and its reply

    empty = ok(await admin.get(kpi, params={"from": WINDOW["from"], "to": WINDOW["from"]}))
    assert (empty["dialogs"], empty["messages"], empty["answer_avg_s"]) == (0, 0, None)
    # Reversed (here by a second, across zones) is an empty period too, not an error: any
    # two times the schema allows are a window.
    reversed_ = {"from": "2024-05-01T03:00:01+03:00", "to": "2024-05-01T00:00:00Z"}
    for path in (kpi, f"/v1/lines/{seeded.line}/stats"):
        nothing = ok(await admin.get(path, params=reversed_))
        assert (nothing["dialogs"], nothing["messages"]) == (0, 0), path


# --- lines --------------------------------------------------------------------------------


async def test_line_stats_count_the_window_exactly(admin: AsyncClient, seeded: Seeded):
    stats = ok(await admin.get(f"/v1/lines/{seeded.line}/stats", params=WINDOW))
    assert (stats["line_id"], stats["from"], stats["to"]) == (
        seeded.line,
        "2024-05-01T00:00:00Z",
        "2024-05-02T00:00:00Z",
    )
    assert numbers(stats, "from", "to") == {
        "dialogs_in_work": 2,  # d2, d3 now, whatever the window
        "dialogs": 4,  # d1, d2, d3, d6 started in it
        "closed": 3,  # d1, d4 (started before), d6 (spam); d5 closed after
        "messages": 8,  # every author; not d4's of 30 April, d5's at midnight, nor d7's
        "leads": 2,  # d1's and d6's (its last microsecond)
        "first_answer_avg_s": 31,  # (30 + 2 + 60) / 3 = 30.67
        "overdue": 2,  # d1, d3
    }

    everything = ok(await admin.get(f"/v1/lines/{seeded.line}/stats"))
    assert numbers(everything, "from", "to") == {
        "dialogs_in_work": 2,
        "dialogs": 6,
        "closed": 4,
        "messages": 11,
        "leads": 3,
        "first_answer_avg_s": 138,  # (30 + 2 + 100 + 500 + 60) / 5 = 138.4
        "overdue": 4,
    }

    other = ok(await admin.get(f"/v1/lines/{seeded.other_line}/stats", params=WINDOW))
    assert numbers(other, "from", "to") == {
        "dialogs_in_work": 1,
        "dialogs": 1,
        "closed": 0,
        "messages": 2,
        "leads": 1,
        "first_answer_avg_s": 41,
        "overdue": 0,
    }


# --- the kpi object of each dialog -------------------------------------------------------

D1_KPI = {  # 101 / 3 = 33.67
    "first_answer_s": 30,
    "total_answer_s": 101,
    "avg_answer_s": 34,
    "max_answer_s": 60,
    "overdue": True,
    "overdue_count": 1,
}
D2_KPI = {  # 5 / 2 = 2.5, half up
    "first_answer_s": 2,
    "total_answer_s": 5,
    "avg_answer_s": 3,
    "max_answer_s": 3,
    "overdue": False,
    "overdue_count": 0,
}
D7_KPI = {  # one answer, on the other line
    "first_answer_s": 41,
    "total_answer_s": 41,
    "avg_answer_s": 41,
    "max_answer_s": 41,
    "overdue": False,
    "overdue_count": 0,
}
D3_KPI = {  # nothing answered yet, two KPI items overdue
    "first_answer_s": None,
    "total_answer_s": None,
    "avg_answer_s": None,
    "max_answer_s": None,
    "overdue": True,
    "overdue_count": 2,
}


async def test_each_listed_dialog_carries_its_kpi(admin: AsyncClient, app: FastAPI, seeded: Seeded):
    d = seeded.dialogs
    listed = ok(await admin.get("/v1/dialogs", params={"line_id": seeded.line}))
    kpis = {item["id"]: item["kpi"] for item in listed["items"]}
    assert [kpis[d[name]] for name in ("d1", "d2", "d3")] == [D1_KPI, D2_KPI, D3_KPI]
    assert kpis[d["d6"]]["avg_answer_s"] == 60

    page = ok(await admin.get("/v1/dialogs", params={"line_id": seeded.line, "limit": 2}))
    assert page["next_cursor"] is not None  # paging still works with the KPI attached
    assert [item["id"] for item in page["items"]] == [d["d6"], d["d5"]]

    key = await post(admin, "/v1/api-keys", {"role": "operator", "operator_id": seeded.ann})
    async with client_for(app, key["key"]) as as_ann:
        console = ok(await as_ann.get(f"/v1/operators/{seeded.ann}/dialogs"))
        assert [(item["id"], item["kpi"]) for item in console] == [
            (d["d2"], D2_KPI),
            (d["d3"], D3_KPI),
            (d["d7"], D7_KPI),
        ]
        own = ok(await as_ann.get("/v1/dialogs", params={"line_id": seeded.line}))
        assert {item["id"]: item["kpi"] for item in own["items"]}[d["d1"]] == D1_KPI

    # A closed dialog's read never asks its (ended) workflow; a stand-in keeps the test off
    # Temporal, and would fail loudly if it were asked.
    app.state.temporal = object()
    one = ok(await admin.get(f"/v1/dialogs/{d['d1']}"))
    assert (one["kpi"], one["deadlines"]) == (D1_KPI, {})


# --- who may ask, and what -----------------------------------------------------------------


async def test_operators_read_only_their_own_kpi_and_no_line_stats(
    admin: AsyncClient, app: FastAPI, seeded: Seeded
):
    ann_key = await post(admin, "/v1/api-keys", {"role": "operator", "operator_id": seeded.ann})
    supervisor_key = await post(admin, "/v1/api-keys", {"role": "supervisor"})
    async with (
        client_for(app, ann_key["key"]) as as_ann,
        client_for(app, supervisor_key["key"]) as as_supervisor,
        client_for(app, None) as anonymous,
    ):
        mine = ok(await as_ann.get(f"/v1/operators/{seeded.ann}/kpi", params=WINDOW))
        assert mine["dialogs"] == 4
        refused = await as_ann.get(f"/v1/operators/{seeded.bob}/kpi", params=WINDOW)
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"].startswith(PROBLEM_JSON)
        assert (await as_ann.get("/v1/operators/999999/kpi")).status_code == 403
        assert (await as_ann.get(f"/v1/lines/{seeded.line}/stats")).status_code == 403

        assert ok(await as_supervisor.get(f"/v1/operators/{seeded.bob}/kpi"))["dialogs"] == 1
        assert ok(await as_supervisor.get(f"/v1/lines/{seeded.line}/stats"))["dialogs"] == 6

        assert (await anonymous.get(f"/v1/operators/{seeded.ann}/kpi")).status_code == 401
        assert (await anonymous.get(f"/v1/lines/{seeded.line}/stats")).status_code == 401

    for path in (
        "/v1/operators/999999/kpi",
        "/v1/lines/999999/stats",
        "/v1/lines/2147483648/stats",
    ):
        missing = await admin.get(path)
        assert missing.status_code == 404, missing.text
        assert missing.headers["content-type"].startswith(PROBLEM_JSON)
    deleted = await admin.delete(f"/v1/lines/{seeded.other_line}", params={"force": "true"})
    assert deleted.status_code == 204, deleted.text
    assert (await admin.get(f"/v1/lines/{seeded.other_line}/stats")).status_code == 404


@pytest.mark.parametrize("which", ["operator", "line"])
@pytest.mark.parametrize(
    ("params", "field", "says"),
    [
        ({"from": "yesterday"}, "from", "ISO 8601"),
        ({"to": "2024-05-01"}, "to", "zone"),  # a date alone has no zone
        ({"from": "2024-05-01T00:00:00"}, "from", "zone"),
        ({"from": "2024-05-01T00:00:00 03:00"}, "from", "%2B"),  # '+' sent unescaped
        ({"from": "0001-01-01T00:00:00+01:00"}, "from", "range"),
    ],
    ids=["not-a-time", "date-only", "no-zone", "unescaped-plus", "overflow"],
)  # fmt: skip
async def test_a_bad_window_is_422_naming_the_field(
    admin: AsyncClient, seeded: Seeded, which: str, params: dict[str, str], field: str, says: str
):
    path = {
        "operator": f"/v1/operators/{seeded.ann}/kpi",
        "line": f"/v1/lines/{seeded.line}/stats",
    }[which]
    problem = assert_invalid(await admin.get(path, params=params), field)
    assert says in problem["errors"][0]["message"]
