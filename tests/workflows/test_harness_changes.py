"""The harness changes operators and lines through the API's own rules (``core.operators``,
``core.lines``), at workflow time: what a workflow test sets up is what the API would do, so
a rule cannot drift between the two."""

import pytest

from core.lines import UnknownReference
from core.models import Line, Operator
from tests.workflows.harness import Harness


async def operator_row(harness: Harness, operator_id: int) -> Operator:
    async with harness.sessions() as session:
        operator = await session.get(Operator, operator_id)
    assert operator is not None
    return operator


async def line_settings(harness: Harness, line_id: int) -> dict[str, object]:
    async with harness.sessions() as session:
        line = await session.get(Line, line_id)
    assert line is not None
    return line.settings


async def test_firing_through_the_harness_stamps_fired_at_at_workflow_time(harness: Harness):
    (ann,) = await harness.operators(1)
    await harness.sleep(3600)  # workflow time is now an hour ahead of the wall clock
    before = await harness.now()

    await harness.operator_changes(ann, fired=True)

    row = await operator_row(harness, ann)
    assert row.fired
    assert row.fired_at is not None and before <= row.fired_at <= await harness.now()
    await harness.operator_changes(ann, fired=True)  # fired again: still since then
    assert (await operator_row(harness, ann)).fired_at == row.fired_at
    await harness.operator_changes(ann, fired=False)
    rehired = await operator_row(harness, ann)
    assert (rehired.fired, rehired.fired_at) == (False, None)


async def test_queue_members_set_through_the_harness_must_exist_as_in_the_api(
    harness: Harness,
):
    (ann,) = await harness.operators(1)
    channel = await harness.line([ann])
    before = await line_settings(harness, channel.line_id)

    with pytest.raises(UnknownReference) as refused:
        await harness.set_members(channel.line_id, [ann, 10**9])

    assert refused.value.field == "queue.members[1].id"
    assert await line_settings(harness, channel.line_id) == before


async def test_settings_changed_through_the_harness_are_checked_as_in_the_api(
    harness: Harness,
):
    (ann,) = await harness.operators(1)
    channel = await harness.line([ann])
    patch = {"queue": {"members": [{"type": "department", "id": 10**9}]}}

    with pytest.raises(UnknownReference) as refused:
        await harness.change_settings(channel.line_id, patch)

    assert refused.value.message == f"department {10**9} does not exist"
