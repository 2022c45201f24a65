"""Quick answer lists: admins and supervisors edit them, operators read them, a line offers
one, and the ``/`` search ranks short code prefix, then short code, title and text."""

from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from core.quick_answers import filled, ranked
from tests.conftest import client_for


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


async def new_list(admin: AsyncClient, *answers: tuple[str, str, str]) -> int:
    list_id: int = ok(await admin.post("/v1/quick-answer-lists", json={"name": "Support"}), 201)[
        "id"
    ]
    for title, code, text in answers:
        body = {"title": title, "code": code, "text": text}
        ok(await admin.post(f"/v1/quick-answer-lists/{list_id}/answers", json=body), 201)
    return list_id


async def key(admin: AsyncClient, role: str) -> str:
    binding: dict[str, int] = {}
    if role == "operator":
        binding["operator_id"] = ok(await admin.post("/v1/operators", json={"name": "Ann"}), 201)[
            "id"
        ]
    created = ok(await admin.post("/v1/api-keys", json={"role": role, **binding}), 201)
    return str(created["key"])


SAMPLE = (
    ("Greeting", "hello", "Hello, #CLIENT_NAME#! I am #OPERATOR_NAME#."),
    ("Delivery times", "ship", "We ship within two days; say hello to the courier."),
    ("Refunds", "refund", "Refunds take five days."),
    ("Say hello back", "bye", "Goodbye!"),
    ("Office hours", "othello", "We work 9 to 6."),
)


async def test_the_search_ranks_code_prefix_then_code_title_and_text(admin: AsyncClient):
    list_id = await new_list(admin, *SAMPLE)

    found = ok(await admin.get(f"/v1/quick-answer-lists/{list_id}/answers", params={"q": "HEL"}))
    everything = ok(await admin.get(f"/v1/quick-answer-lists/{list_id}/answers"))

    # prefix "hello", then contains "othello", then title "Say hello back", then text "ship"
    assert [a["code"] for a in found["items"]] == ["hello", "othello", "bye", "ship"]
    assert [a["code"] for a in everything["items"]] == ["bye", "hello", "othello", "refund", "ship"]
    assert found["next_cursor"] is None


async def test_a_long_search_comes_in_pages(admin: AsyncClient):
    list_id = await new_list(admin, *((f"Answer {n}", f"a{n:02d}", "text") for n in range(5)))
    path = f"/v1/quick-answer-lists/{list_id}/answers"

    first = ok(await admin.get(path, params={"q": "a", "limit": 2}))
    second = ok(
        await admin.get(path, params={"q": "a", "limit": 2, "cursor": first["next_cursor"]})
    )
    last = ok(await admin.get(path, params={"q": "a", "limit": 2, "cursor": second["next_cursor"]}))

    pages = [[a["code"] for a in page["items"]] for page in (first, second, last)]
    assert pages == [["a00", "a01"], ["a02", "a03"], ["a04"]]
    assert last["next_cursor"] is None


async def test_a_short_code_is_unique_within_its_list(admin: AsyncClient):
    list_id = await new_list(admin, ("Greeting", "hello", "Hi"))
    other = await new_list(admin, ("Greeting", "hello", "Hi"))  # another list may repeat it
    again = {"title": "Hi again", "code": "hello", "text": "Hi!"}

    refused = problem(
        await admin.post(f"/v1/quick-answer-lists/{list_id}/answers", json=again), 409
    )

    assert refused["errors"][0]["field"] == "code"
    answers = ok(await admin.get(f"/v1/quick-answer-lists/{other}/answers"))["items"]
    renamed = await admin.patch(f"/v1/quick-answers/{answers[0]['id']}", json={"code": "hey"})
    assert ok(renamed)["code"] == "hey"


@pytest.mark.parametrize(
    ("body", "field"),
    [({"title": "T", "code": "with space", "text": "x"}, "code"),
     ({"title": "T", "code": "/hello", "text": "x"}, "code"),
     ({"title": " ", "code": "c", "text": "x"}, "title"),
     ({"title": "T", "code": "c", "text": ""}, "text")],
)  # fmt: skip
async def test_a_bad_answer_is_422_naming_the_field(admin: AsyncClient, body: Any, field: str):
    list_id = await new_list(admin)
    refused = problem(await admin.post(f"/v1/quick-answer-lists/{list_id}/answers", json=body), 422)
    assert refused["errors"][0]["field"] == field


async def test_supervisors_edit_lists_and_operators_only_read_them(
    app: FastAPI, admin: AsyncClient
):
    list_id = await new_list(admin, ("Greeting", "hello", "Hi"))
    answer = {"title": "Refunds", "code": "refund", "text": "Five days."}
    async with client_for(app, await key(admin, "supervisor")) as supervisor:
        ok(await supervisor.post(f"/v1/quick-answer-lists/{list_id}/answers", json=answer), 201)
        ok(await supervisor.patch(f"/v1/quick-answer-lists/{list_id}", json={"name": "Sales"}))
    async with client_for(app, await key(admin, "operator")) as operator:
        listed = ok(await operator.get("/v1/quick-answer-lists"))
        read = ok(
            await operator.get(f"/v1/quick-answer-lists/{list_id}/answers", params={"q": "ref"})
        )
        denied = await operator.post(f"/v1/quick-answer-lists/{list_id}/answers", json=answer)

    assert [(entry["name"], entry["answers"]) for entry in listed] == [("Sales", 2)]
    assert [a["code"] for a in read["items"]] == ["refund"]
    problem(denied, 403)


async def test_a_line_offers_a_list_that_exists_and_the_list_stays_while_offered(
    admin: AsyncClient,
):
    list_id = await new_list(admin, ("Greeting", "hello", "Hi"))
    missing = problem(await admin.post("/v1/lines", json={"quick_answers_list_id": 999999}), 404)
    line = ok(await admin.post("/v1/lines", json={"quick_answers_list_id": list_id}), 201)

    refused = problem(await admin.delete(f"/v1/quick-answer-lists/{list_id}"), 409)
    ok(await admin.patch(f"/v1/lines/{line['id']}", json={"quick_answers_list_id": None}))
    deleted = await admin.delete(f"/v1/quick-answer-lists/{list_id}")

    assert missing["errors"][0]["field"] == "quick_answers_list_id"
    assert f"lines [{line['id']}]" in refused["detail"]
    assert deleted.status_code == 204
    problem(await admin.get(f"/v1/quick-answer-lists/{list_id}"), 404)
    assert ok(await admin.get("/v1/quick-answer-lists")) == []


# --- the pure functions ----------------------------------------------------------------------


def answer(code: str, title: str = "", text: str = "", id: int = 1) -> Any:
    return SimpleNamespace(code=code, title=title, text=text, id=id)


def test_ranking_ignores_case_and_breaks_ties_by_code():
    answers = [answer("Zeta", id=1), answer("alpha", id=2), answer("x", title="ALPHABET", id=3)]
    assert [a.id for a in ranked(answers, "  ALP ")] == [2, 3]
    assert [a.id for a in ranked(answers, "")] == [2, 3, 1]


@pytest.mark.parametrize(
    ("client", "operator", "expected"),
    [("Olga", "Ann", "Hello, Olga! I am Ann."),
     (None, "Ann", "Hello! I am Ann."),
     ("Olga", None, "Hello, Olga! I am.")],
)  # fmt: skip
def test_names_are_filled_in_and_unknown_ones_left_out(client, operator, expected):
    assert filled("Hello, #CLIENT_NAME#! I am #OPERATOR_NAME#.", client, operator) == expected
