"""Switching ``queue.operator_display`` through ``PATCH /v1/lines/{id}``.

The reference article: saving another display mode resets what was entered for the old one.
Leaving ``line`` empties ``operator_overrides``; leaving ``hidden`` resets ``hidden_identity``
to its default. Data the same PATCH sends is kept; a PATCH that keeps the mode resets nothing.
"""

from typing import Any

import pytest
from httpx import AsyncClient, Response

DEFAULT_IDENTITY = {"name": "Operator", "position": None, "avatar_url": None}
TEAM = {"name": "Support team", "position": "Help desk", "avatar_url": "https://t.test/team.png"}


def ok(response: Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def create_operator(admin: AsyncClient, name: str) -> int:
    operator_id: int = ok(await admin.post("/v1/operators", json={"name": name}), 201)["id"]
    return operator_id


async def line_with(admin: AsyncClient, queue: dict[str, Any]) -> dict[str, Any]:
    line: dict[str, Any] = ok(await admin.post("/v1/lines", json={"queue": queue}), 201)
    return line


async def patch_queue(admin: AsyncClient, line_id: int, queue: dict[str, Any]) -> Any:
    after = ok(await admin.patch(f"/v1/lines/{line_id}", json={"queue": queue}))
    assert ok(await admin.get(f"/v1/lines/{line_id}")) == after  # stored as answered
    return after["queue"]


def overrides_for(operator_id: int) -> dict[str, Any]:
    return {str(operator_id): {"name": "Ann S.", "position": "Senior", "avatar_url": None}}


@pytest.mark.parametrize("new_mode", ["profile", "hidden"])
async def test_leaving_line_empties_the_overrides(admin, new_mode):
    ann = await create_operator(admin, "Ann")
    line = await line_with(
        admin, {"operator_display": "line", "operator_overrides": overrides_for(ann)}
    )

    queue = await patch_queue(admin, line["id"], {"operator_display": new_mode})

    assert queue["operator_display"] == new_mode
    assert queue["operator_overrides"] == {}


@pytest.mark.parametrize("new_mode", ["profile", "line"])
async def test_leaving_hidden_resets_the_hidden_identity(admin, new_mode):
    line = await line_with(admin, {"operator_display": "hidden", "hidden_identity": TEAM})

    queue = await patch_queue(admin, line["id"], {"operator_display": new_mode})

    assert queue["operator_display"] == new_mode
    assert queue["hidden_identity"] == DEFAULT_IDENTITY


async def test_switching_keeps_the_new_modes_data_sent_with_it(admin):
    ann = await create_operator(admin, "Ann")
    line = await line_with(admin, {"operator_display": "hidden", "hidden_identity": TEAM})

    queue = await patch_queue(
        admin, line["id"], {"operator_display": "line", "operator_overrides": overrides_for(ann)}
    )

    assert queue["operator_overrides"] == overrides_for(ann)
    assert queue["hidden_identity"] == DEFAULT_IDENTITY  # the mode left: reset

    queue = await patch_queue(
        admin, line["id"], {"operator_display": "hidden", "hidden_identity": TEAM}
    )

    assert queue["hidden_identity"] == TEAM
    assert queue["operator_overrides"] == {}


@pytest.mark.parametrize(
    "patch",
    [
        pytest.param({"operator_display": "line"}, id="same-mode-again"),
        pytest.param({"distribution": "all"}, id="other-queue-field"),
        pytest.param({"hidden_identity": {"name": "Team"}}, id="other-modes-data"),
    ],
)
async def test_a_patch_that_keeps_the_mode_resets_nothing(admin, patch):
    ann = await create_operator(admin, "Ann")
    line = await line_with(
        admin,
        {
            "operator_display": "line",
            "operator_overrides": overrides_for(ann),
            "hidden_identity": TEAM,
        },
    )

    queue = await patch_queue(admin, line["id"], patch)

    assert queue["operator_display"] == "line"
    assert queue["operator_overrides"] == overrides_for(ann)
    assert queue["hidden_identity"] == {**TEAM, **patch.get("hidden_identity", {})}


async def test_a_refused_switch_changes_nothing(admin):
    """A switch whose body is invalid is refused whole: the old mode's data stays."""
    ann = await create_operator(admin, "Ann")
    line = await line_with(
        admin, {"operator_display": "line", "operator_overrides": overrides_for(ann)}
    )
    patch = {"queue": {"operator_display": "hidden", "handover_after": 1}}

    response = await admin.patch(f"/v1/lines/{line['id']}", json=patch)

    assert response.status_code == 422, response.text
    assert [error["field"] for error in response.json()["errors"]] == ["queue.handover_after"]
    assert ok(await admin.get(f"/v1/lines/{line['id']}")) == line


async def test_an_unknown_mode_is_422_and_changes_nothing(admin):
    ann = await create_operator(admin, "Ann")
    line = await line_with(
        admin, {"operator_display": "line", "operator_overrides": overrides_for(ann)}
    )

    response = await admin.patch(
        f"/v1/lines/{line['id']}", json={"queue": {"operator_display": "nickname"}}
    )

    assert response.status_code == 422, response.text
    assert [error["field"] for error in response.json()["errors"]] == ["queue.operator_display"]
    assert ok(await admin.get(f"/v1/lines/{line['id']}")) == line
