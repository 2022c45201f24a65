"""Agreement templates: ready consent texts, and an agreement started from one.

``GET /v1/agreement-templates[?language=]`` lists them; ``POST /v1/agreements`` with
``template_id`` takes the template's title and text for whatever the body leaves out.
"""

import re
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response

from tests.conftest import client_for

PROBLEM_JSON = "application/problem+json"
CYRILLIC = re.compile("[\u0400-\u04ff]")


def ok(response: Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def refused(response: Response) -> list[str]:
    """The fields a 422 problem-details answer names."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    return [error["field"] for error in response.json()["errors"]]


async def templates(client: AsyncClient, **params: str) -> Any:
    return ok(await client.get("/v1/agreement-templates", params=params))


# --- the list ---------------------------------------------------------------------------


async def test_templates_in_russian_and_english_are_listed(admin):
    listed = await templates(admin)

    by_id = {template["id"]: template for template in listed}
    assert {"personal-data-en", "personal-data-ru"} <= set(by_id)
    assert len(by_id) == len(listed)  # ids are unique
    for template in listed:
        assert set(template) == {"id", "language", "title", "text"}
        assert template["id"].endswith(f"-{template['language']}")
        assert template["title"].strip() and len(template["text"]) > 200
    english, russian = by_id["personal-data-en"], by_id["personal-data-ru"]
    assert "personal data" in english["text"] and not CYRILLIC.search(english["text"])
    assert CYRILLIC.search(russian["title"]) and "персональных данных" in russian["text"]


async def test_a_template_says_the_next_message_is_consent(admin):
    """The notice goes out at the first message; the client's next message consents."""
    by_id = {template["id"]: template for template in await templates(admin)}

    assert "your next message" in by_id["personal-data-en"]["text"]
    assert "следующее сообщение" in by_id["personal-data-ru"]["text"]


@pytest.mark.parametrize("language", ["ru", "en"])
async def test_the_list_filters_by_language(admin, language):
    listed = await templates(admin, language=language)

    assert [template["id"] for template in listed] == [f"personal-data-{language}"]


async def test_a_language_without_templates_lists_none(admin):
    assert await templates(admin, language="de") == []


@pytest.mark.parametrize("language", ["russian", "RU", "xx", ""])
async def test_a_language_that_is_not_an_iso_code_is_422(admin, language):
    response = await admin.get("/v1/agreement-templates", params={"language": language})

    assert refused(response) == ["query.language"]


@pytest.mark.parametrize("role", ["supervisor", "operator"])
async def test_readers_may_list_templates_and_bots_may_not(app: FastAPI, admin, role):
    binding: dict[str, int] = {}
    if role == "operator":
        binding = {
            "operator_id": ok(await admin.post("/v1/operators", json={"name": "A"}), 201)["id"]
        }
    key = ok(await admin.post("/v1/api-keys", json={"role": role, **binding}), 201)["key"]
    bot = ok(await admin.post("/v1/bots", json={"name": "Helper"}), 201)["id"]
    bot_key = ok(await admin.post("/v1/api-keys", json={"role": "bot", "bot_id": bot}), 201)["key"]

    async with client_for(app, key) as reader:
        assert await templates(reader) == await templates(admin)
    async with client_for(app, bot_key) as as_bot:
        assert (await as_bot.get("/v1/agreement-templates")).status_code == 403
    async with client_for(app, None) as anonymous:
        assert (await anonymous.get("/v1/agreement-templates")).status_code == 401


# --- starting an agreement from a template ----------------------------------------------


async def test_an_agreement_starts_from_a_template(admin):
    [russian] = await templates(admin, language="ru")

    created = ok(await admin.post("/v1/agreements", json={"template_id": "personal-data-ru"}), 201)

    assert (created["name"], created["text"], created["version"]) == (
        russian["title"],
        russian["text"],
        1,
    )
    assert ok(await admin.get(f"/v1/agreements/{created['id']}")) == created
    versions = ok(await admin.get(f"/v1/agreements/{created['id']}/versions"))
    assert [(v["version"], v["text"]) for v in versions] == [(1, russian["text"])]


async def test_fields_given_with_a_template_win(admin):
    [english] = await templates(admin, language="en")

    named = ok(
        await admin.post(
            "/v1/agreements", json={"template_id": "personal-data-en", "name": "Web chat consent"}
        ),
        201,
    )
    worded = ok(
        await admin.post(
            "/v1/agreements", json={"template_id": "personal-data-en", "text": "Our own words."}
        ),
        201,
    )

    assert (named["name"], named["text"]) == ("Web chat consent", english["text"])
    assert (worded["name"], worded["text"]) == (english["title"], "Our own words.")


async def test_an_agreement_from_a_template_is_edited_like_any_other(admin):
    created = ok(await admin.post("/v1/agreements", json={"template_id": "personal-data-en"}), 201)

    changed = ok(
        await admin.patch(
            f"/v1/agreements/{created['id']}", json={"text": created["text"] + " Thank you."}
        )
    )

    assert changed["version"] == 2
    [english] = await templates(admin, language="en")
    assert english["text"] == created["text"]  # the template itself is unchanged


async def test_a_line_may_require_an_agreement_started_from_a_template(admin):
    created = ok(await admin.post("/v1/agreements", json={"template_id": "personal-data-ru"}), 201)
    body = {"agreement": {"required": True, "agreement_id": created["id"]}}

    line = ok(await admin.post("/v1/lines", json=body), 201)

    assert line["agreement"] == body["agreement"]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"template_id": "personal-data-xx"}, ["template_id"]),
        ({"template_id": ""}, ["template_id"]),
        ({"template_id": 5}, ["template_id"]),
        ({"template_id": None}, ["name", "text"]),
        ({}, ["name", "text"]),
        ({"name": "Consent"}, ["text"]),
        ({"text": "We keep your data."}, ["name"]),
        ({"template_id": "personal-data-en", "name": ""}, ["name"]),
        ({"template_id": "personal-data-en", "language": "en"}, ["language"]),
    ],
    ids=[
        "unknown-template",
        "empty-template",
        "number",
        "null-template",
        "empty-body",
        "no-text",
        "no-name",
        "empty-name",
        "unknown-field",
    ],
)
async def test_a_bad_create_is_422_naming_the_field(admin, body, fields):
    assert refused(await admin.post("/v1/agreements", json=body)) == fields
    assert ok(await admin.get("/v1/agreements")) == []


async def test_only_admins_start_an_agreement_from_a_template(app: FastAPI, admin):
    key = ok(await admin.post("/v1/api-keys", json={"role": "supervisor"}), 201)["key"]

    async with client_for(app, key) as supervisor:
        response = await supervisor.post("/v1/agreements", json={"template_id": "personal-data-en"})

    assert response.status_code == 403, response.text
    assert ok(await admin.get("/v1/agreements")) == []
