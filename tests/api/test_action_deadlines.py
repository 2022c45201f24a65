"""Bounded answers without Temporal or the database: 503 problem details with ``Retry-After``
when the database is unreachable (inbound messages, reads) or Temporal is (actions), never a
500 or a plain-text body, and a reply that did not reach the workflow is not kept."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.config import Settings
from core.local_http import free_port
from tests.api.test_service import started, unreachable_database
from tests.conftest import ADMIN_KEY, client_for

PROBLEM_JSON = "application/problem+json"


def assert_unavailable(response: httpx.Response) -> dict[str, Any]:
    """A 503 problem telling the client when to try again."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["retry-after"] == "5"
    problem: dict[str, Any] = response.json()
    assert (problem["status"], problem["title"]) == (503, "Service unavailable")
    return problem


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_inbound_messages_and_reads_are_503_while_the_database_is_unreachable(
    backend: str, tmp_path: Path
):
    settings = Settings(
        database_url=unreachable_database(backend, tmp_path),
        bootstrap_admin_key=ADMIN_KEY,
        temporal_address=f"127.0.0.1:{free_port()}",
    )
    inbound = {"chat": {"external_id": "c-1"}, "message": {"external_id": "m-1", "text": "Hi"}}
    async with started(settings) as app, client_for(app, ADMIN_KEY) as admin:
        filed = await admin.post(
            "/v1/channels/1/messages", json=inbound, headers={"Authorization": "Bearer secret"}
        )
        listed = await admin.get("/v1/dialogs")
        created = await admin.post("/v1/operators", json={"name": "Ann"})
    for answer in (filed, listed, created):
        assert "database" in assert_unavailable(answer)["detail"]


async def test_actions_are_503_while_temporal_is_unreachable_and_keep_no_reply(
    make_app: Callable[..., Any],
):
    app = await make_app(temporal_address=f"127.0.0.1:{free_port()}")
    async with client_for(app, ADMIN_KEY) as admin:
        ann = (await admin.post("/v1/operators", json={"name": "Ann"})).json()["id"]
        members = [{"type": "operator", "id": ann}]
        line = (await admin.post("/v1/lines", json={"queue": {"members": members}})).json()
        channel = await admin.post(f"/v1/lines/{line['id']}/channels", json={"type": "api"})
        inbound = {"chat": {"external_id": "c-1"}, "message": {"external_id": "m-1", "text": "Hi"}}
        filed = await admin.post(
            f"/v1/channels/{channel.json()['id']}/messages",
            json=inbound,
            headers={"Authorization": f"Bearer {channel.json()['secret']}"},
        )
        assert filed.status_code == 202, filed.text  # inbound needs only the database
        dialog_id = filed.json()["dialog_id"]

        accepted = await admin.post(f"/v1/dialogs/{dialog_id}/accept", json={"operator_id": ann})
        replied = await admin.post(
            f"/v1/dialogs/{dialog_id}/messages", json={"operator_id": ann, "text": "Hello Bob"}
        )
        messages = (await admin.get(f"/v1/dialogs/{dialog_id}/messages")).json()["items"]
    assert "Temporal" in assert_unavailable(accepted)["detail"]
    assert_unavailable(replied)
    assert [m["text"] for m in messages] == ["Hi"]
