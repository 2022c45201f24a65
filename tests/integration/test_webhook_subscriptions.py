"""Event webhooks end to end: deliveries signed as the webhook channel signs (timestamp and
body), a rotated secret signing beside the new one for a day, a failed delivery sent again on
request, and subscriber URLs that lead inside refused at send time."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from channels.webhook.signing import verify
from tests.channels.receiver import Receiver
from tests.conftest import ADMIN_KEY, client_for
from tests.integration.conftest import System, running_worker


async def subscribe(system: System, url: str) -> dict[str, Any]:
    created = await system.admin.post(
        "/v1/webhooks", json={"url": url, "events": ["dialog.created"]}
    )
    assert created.status_code == 201, created.text
    answer: dict[str, Any] = created.json()
    return answer


async def a_dialog_starts(system: System, chat: str) -> None:
    _, channel, secret = await system.line([])
    written = await system.client_writes(channel, secret, chat, "m-1")
    assert written.status_code == 202, written.text


async def delivery_when(
    system: System, webhook_id: int, status: str, timeout_s: float = 20
) -> dict[str, Any]:
    """The subscription's newest delivery once it has this status."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        page = (await system.admin.get(f"/v1/webhooks/{webhook_id}/deliveries")).json()
        if page["items"] and page["items"][0]["status"] == status:
            found: dict[str, Any] = page["items"][0]
            return found
        assert asyncio.get_running_loop().time() < deadline, page
        await asyncio.sleep(0.05)


async def test_a_failed_delivery_goes_again_on_request_signed_with_both_secrets_after_rotation(
    system: System, receiver: Receiver
) -> None:
    receiver.answer(410)  # "gone": final at once
    webhook = await subscribe(system, receiver.url)
    await a_dialog_starts(system, "wh-sub-1")
    failed = await delivery_when(system, webhook["id"], "failed")
    assert failed["last_status_code"] == 410
    rotated = await system.admin.post(f"/v1/webhooks/{webhook['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    path = f"/v1/webhooks/{webhook['id']}/deliveries/{failed['id']}/redeliver"

    again = await system.admin.post(path)
    delivered = await delivery_when(system, webhook["id"], "delivered")
    twice = await system.admin.post(path)

    assert again.status_code == 202, again.text
    assert again.json()["status"] == "pending"
    assert delivered["id"] == failed["id"]
    assert twice.status_code == 409
    first, second = receiver.requests
    assert first.body == second.body
    verify(first.headers, first.body, [webhook["secret"]], datetime.now(UTC))
    for secret in (new_secret, webhook["secret"]):  # either one verifies during the grace
        verify(second.headers, second.body, [secret], datetime.now(UTC))


@pytest.fixture
async def production_system(
    monkeypatch: pytest.MonkeyPatch,
    make_app: Callable[..., Awaitable[FastAPI]],
    temporal: WorkflowEnvironment,
    task_queue: str,
) -> AsyncIterator[System]:
    """The system with the production default: webhooks reach the public internet only."""
    monkeypatch.setenv("OPENLINES_WEBHOOK_ALLOW_PRIVATE", "false")  # the worker reads it
    app = await make_app(task_queue=task_queue)
    app.state.temporal = temporal.client
    async with running_worker(app, temporal, task_queue), client_for(app, ADMIN_KEY) as admin:
        yield System(app, admin, temporal, task_queue)


@pytest.mark.parametrize("private", ["http://127.0.0.1:9/hook", "http://169.254.169.254/x"])
async def test_a_subscriber_url_leading_inside_is_refused_at_send_time(
    production_system: System, private: str
) -> None:
    system = production_system
    webhook = await subscribe(system, private)
    await a_dialog_starts(system, "wh-sub-2")
    failed = await delivery_when(system, webhook["id"], "failed")
    assert failed["attempts"] == 1  # final at once: sending again would not help
    assert failed["last_error"].startswith("not sent: the URL leads to a private")
