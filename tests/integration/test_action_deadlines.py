"""Actions are bounded in time: without a worker an action is answered 503 within the call's
deadline and is not applied when a worker comes; a reply is idempotent by its
``Idempotency-Key``; a transfer to a line that cannot take it changes nothing.

The API here connects to Temporal itself, as in production, with a short deadline.
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from tests.api.test_action_deadlines import PROBLEM_JSON, assert_unavailable
from tests.conftest import ADMIN_KEY, client_for
from tests.integration.conftest import System, running_worker
from tests.integration.test_dialog_reads_and_actions import accepted, offered

DEADLINE_S = 1.5
SLACK_S = 2.0  # for a loaded machine; without the deadline these calls take 30 s or forever


@pytest.fixture
async def quick(
    make_app: Callable[..., Any], temporal: WorkflowEnvironment, task_queue: str
) -> AsyncIterator[System]:
    """The app with a short Temporal deadline; no worker runs unless a test starts one."""
    address = temporal.client.service_client.config.target_host
    app: FastAPI = await make_app(
        task_queue=task_queue, temporal_address=address, temporal_call_timeout=DEADLINE_S
    )
    async with client_for(app, ADMIN_KEY) as admin:
        yield System(app, admin, temporal, task_queue)


def worker(system: System) -> Any:
    return running_worker(system.app, system.temporal, system.task_queue)


async def timed(request: Any) -> tuple[httpx.Response, float]:
    """The answer to a request, and how long it took in seconds."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    answer: httpx.Response = await request
    return answer, loop.time() - started


async def served(system: System, dialog_id: int) -> None:
    """Wait until a worker serves the dialog's workflow again (its deadlines come from it)."""
    await system.dialog_when(dialog_id, lambda d: bool(d["deadlines"]), timeout_s=30)


async def reply(
    system: System, dialog_id: int, operator: int, text: str, key: str | None = None
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return await system.admin.post(
        f"/v1/dialogs/{dialog_id}/messages",
        json={"operator_id": operator, "text": text},
        headers=headers,
    )


async def replies(system: System, dialog_id: int) -> list[str]:
    messages = (await system.admin.get(f"/v1/dialogs/{dialog_id}/messages")).json()["items"]
    return [m["text"] for m in messages if m["author"] == "operator"]


async def test_an_action_without_a_worker_is_503_in_time_and_not_applied_when_one_comes(
    quick: System,
):
    ann = await quick.operator("Ann")
    _, channel, secret = await quick.line([ann])
    async with worker(quick):
        dialog_id = await offered(quick, channel, secret, "c-1", ann)

    accept = quick.admin.post(f"/v1/dialogs/{dialog_id}/accept", json={"operator_id": ann})
    answer, took = await timed(accept)
    assert "not applied" in assert_unavailable(answer)["detail"]
    assert took < DEADLINE_S + SLACK_S

    async with worker(quick):
        await served(quick, dialog_id)
        dialog = (await quick.admin.get(f"/v1/dialogs/{dialog_id}")).json()
        assert (dialog["status"], dialog["operator_id"]) == ("queued", None)
        # Had the first accept been applied late, this one would be "already accepted".
        again = await quick.admin.post(f"/v1/dialogs/{dialog_id}/accept", json={"operator_id": ann})
    assert again.status_code == 200, again.text
    assert (again.json()["status"], again.json()["operator_id"]) == ("accepted", ann)


async def test_a_reply_without_a_worker_is_not_kept_and_its_retry_is_stored_once(
    quick: System,
):
    ann = await quick.operator("Ann")
    _, channel, secret = await quick.line([ann])
    async with worker(quick):
        dialog_id = await accepted(quick, channel, secret, "c-1", ann)

    answer, took = await timed(reply(quick, dialog_id, ann, "Hi Bob", key="reply-1"))
    assert_unavailable(answer)
    assert took < DEADLINE_S + SLACK_S
    assert await replies(quick, dialog_id) == []  # not left looking sent

    async with worker(quick):
        await served(quick, dialog_id)
        retried = await reply(quick, dialog_id, ann, "Hi Bob", key="reply-1")
        assert retried.status_code == 200, retried.text
        assert retried.json()["status"] == "operator_replied"
        assert await replies(quick, dialog_id) == ["Hi Bob"]


async def test_a_reply_sent_twice_with_one_idempotency_key_is_stored_and_answered_once(
    quick: System,
):
    ann = await quick.operator("Ann")
    _, channel, secret = await quick.line([ann])
    async with worker(quick):
        dialog_id = await accepted(quick, channel, secret, "c-1", ann)
        first = await reply(quick, dialog_id, ann, "Hi Bob", key="k-1")
        second = await reply(quick, dialog_id, ann, "Hi Bob", key="k-1")
        other = await reply(quick, dialog_id, ann, "How can I help?", key="k-2")
        texts = await replies(quick, dialog_id)
    assert (first.status_code, second.status_code, other.status_code) == (200, 200, 200)
    # The same dialog; only its KPI numbers may be fresher (the first answer was laid over the
    # row as read before the reply was recorded).
    assert {**second.json(), "kpi": None} == {**first.json(), "kpi": None}
    assert first.json()["status"] == "operator_replied"
    assert texts == ["Hi Bob", "How can I help?"]


async def test_an_idempotency_key_too_long_or_reused_for_another_text_is_422(quick: System):
    ann = await quick.operator("Ann")
    _, channel, secret = await quick.line([ann])
    async with worker(quick):
        dialog_id = await accepted(quick, channel, secret, "c-1", ann)
        too_long = await reply(quick, dialog_id, ann, "Hi", key="k" * 201)
        first = await reply(quick, dialog_id, ann, "Hi", key="k-1")
        reused = await reply(quick, dialog_id, ann, "Something else", key="k-1")
        texts = await replies(quick, dialog_id)
    assert first.status_code == 200, first.text
    for refused in (too_long, reused):
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == PROBLEM_JSON
        assert [e["field"] for e in refused.json()["errors"]] == ["header.Idempotency-Key"]
    assert texts == ["Hi"]


async def test_a_transfer_to_an_unknown_deleted_or_inactive_line_changes_nothing(
    quick: System,
):
    ann, bob = await quick.operator("Ann"), await quick.operator("Bob")
    line_id, channel, secret = await quick.line([ann])
    deleted, _, _ = await quick.line([bob])
    inactive, _, _ = await quick.line([bob])
    assert (await quick.admin.delete(f"/v1/lines/{deleted}")).status_code == 204
    patched = await quick.admin.patch(f"/v1/lines/{inactive}", json={"active": False})
    assert patched.status_code == 200, patched.text
    async with worker(quick):
        dialog_id = await accepted(quick, channel, secret, "c-1", ann)
        before = (await quick.admin.get(f"/v1/dialogs/{dialog_id}")).json()
        answers = {
            target: await quick.admin.post(
                f"/v1/dialogs/{dialog_id}/transfer", json={"line_id": target}
            )
            for target in (deleted, 999_999, inactive)
        }
        after = (await quick.admin.get(f"/v1/dialogs/{dialog_id}")).json()
    for target in (deleted, 999_999):
        assert answers[target].status_code == 404, answers[target].text
        assert answers[target].headers["content-type"] == PROBLEM_JSON
        assert [e["field"] for e in answers[target].json()["errors"]] == ["line_id"]
    assert answers[inactive].status_code == 409, answers[inactive].text
    assert "inactive" in answers[inactive].json()["detail"]
    assert after == before
    assert (after["line_id"], after["status"], after["operator_id"]) == (line_id, "accepted", ann)


async def test_reading_a_dialog_without_a_worker_answers_within_the_deadline(quick: System):
    ann = await quick.operator("Ann")
    _, channel, secret = await quick.line([ann])
    async with worker(quick):
        dialog_id = await offered(quick, channel, secret, "c-1", ann)
    answer, took = await timed(quick.admin.get(f"/v1/dialogs/{dialog_id}"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["offered_to"] == [ann]  # the dialog row, without the live deadlines
    assert took < DEADLINE_S + SLACK_S
