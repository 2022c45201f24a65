"""Agreements: versions on text changes, who may change them, and what may not be deleted."""

from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient

from tests.conftest import client_for

PROBLEM_JSON = "application/problem+json"


async def create(admin: AsyncClient, **body: Any) -> dict[str, Any]:
    response = await admin.post(
        "/v1/agreements", json={"name": "Personal data", "text": "We keep your data.", **body}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_a_new_text_is_a_new_version_and_old_versions_are_kept(admin: AsyncClient):
    agreement = await create(admin)
    assert (agreement["version"], agreement["text"]) == (1, "We keep your data.")

    renamed = await admin.patch(f"/v1/agreements/{agreement['id']}", json={"name": "GDPR"})
    assert (renamed.json()["name"], renamed.json()["version"]) == ("GDPR", 1)
    changed = await admin.patch(
        f"/v1/agreements/{agreement['id']}", json={"text": "We keep your data for a year."}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["version"] == 2
    same = await admin.patch(
        f"/v1/agreements/{agreement['id']}", json={"text": "We keep your data for a year."}
    )
    assert same.json()["version"] == 2  # the same words are not a new version

    versions = (await admin.get(f"/v1/agreements/{agreement['id']}/versions")).json()
    assert [(v["version"], v["text"]) for v in versions] == [
        (1, "We keep your data."),
        (2, "We keep your data for a year."),
    ]
    assert (await admin.get(f"/v1/agreements/{agreement['id']}")).json() == changed.json()
    assert [a["id"] for a in (await admin.get("/v1/agreements")).json()] == [agreement["id"]]


async def test_bad_agreements_are_refused_naming_the_field(admin: AsyncClient):
    for body, field in (
        ({"name": "", "text": "x"}, "name"),
        ({"name": "A", "text": ""}, "text"),
        ({"name": "A", "text": "x", "version": 5}, "version"),
    ):
        response = await admin.post("/v1/agreements", json=body)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith(PROBLEM_JSON)
        assert [e["field"] for e in response.json()["errors"]] == [field]
    assert (await admin.get("/v1/agreements/999")).status_code == 404


async def test_a_line_requiring_an_agreement_needs_one_that_exists(admin: AsyncClient):
    missing = await admin.post(
        "/v1/lines", json={"agreement": {"required": True, "agreement_id": 999}}
    )
    assert missing.status_code == 404, missing.text  # it names nothing
    assert [e["field"] for e in missing.json()["errors"]] == ["agreement.agreement_id"]

    agreement = await create(admin)
    line = await admin.post(
        "/v1/lines", json={"agreement": {"required": True, "agreement_id": agreement["id"]}}
    )
    assert line.status_code == 201, line.text
    in_use = await admin.delete(f"/v1/agreements/{agreement['id']}")
    assert in_use.status_code == 409
    assert f"line {line.json()['id']}" in in_use.json()["detail"]

    unused = await create(admin, name="Marketing")
    assert (await admin.delete(f"/v1/agreements/{unused['id']}")).status_code == 204
    assert (await admin.get(f"/v1/agreements/{unused['id']}")).status_code == 404


async def test_only_admins_change_agreements_and_operators_cannot_read_consents(
    admin: AsyncClient, app: FastAPI
):
    agreement = await create(admin)
    operator = (await admin.post("/v1/operators", json={"name": "Ann"})).json()
    key = (
        await admin.post("/v1/api-keys", json={"role": "operator", "operator_id": operator["id"]})
    ).json()["key"]
    supervisor_key = (await admin.post("/v1/api-keys", json={"role": "supervisor"})).json()["key"]
    async with client_for(app, key) as as_operator, client_for(app, supervisor_key) as as_sup:
        assert (await as_operator.get("/v1/agreements")).status_code == 200
        refused = await as_operator.post("/v1/agreements", json={"name": "A", "text": "x"})
        assert refused.status_code == 403
        assert (
            await as_operator.get(f"/v1/agreements/{agreement['id']}/consents")
        ).status_code == 403
        consents = await as_sup.get(f"/v1/agreements/{agreement['id']}/consents")
        assert (consents.status_code, consents.json()) == (200, [])
    async with client_for(app, None) as anonymous:
        assert (await anonymous.get("/v1/agreements")).status_code == 401
