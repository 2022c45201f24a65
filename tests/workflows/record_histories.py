"""Record workflow histories for the replay test: ``python -m tests.workflows.record_histories
[version] [scenario ...]`` (every scenario when none is named).

Run it when a new workflow version lands, and keep the histories of every older version:
the replay test then proves the current code still replays what running dialogs recorded.
"""

import asyncio
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

import relay
from core.db import create_engine, session_factory
from core.migrate import upgrade_async
from core.temporal_dev_server import add_search_attributes, find_binary
from tests.channels.receiver import serve_receiver
from tests.workflows.harness import Harness
from tests.workflows.test_bots import bot_does, bot_line, bot_says, with_bot
from worker import build_worker
from workflows.channel_delivery import IDLE, KEEP_TRYING
from workflows.channel_delivery import workflow_id as delivery_workflow_id
from workflows.dialog import DialogWorkflow

HISTORIES = Path(__file__).parent / "histories"


async def typical_dialog(h: Harness) -> str:
    """Client writes, operator accepts, replies, client answers, operator closes, the client
    rates it (``1``) while it closes."""
    ann, bob = await h.operators(2)
    channel = await h.line([ann, bob], distribution="strictly", handover_after=60)
    dialog = await h.client_writes(channel, "typical", "Hello")
    await h.offered(dialog, [ann])
    await h.sleep(60)  # nobody took it: handover to Bob
    await h.offered(dialog, [bob])
    await h.accept(dialog, bob)
    await h.reply(dialog, bob)
    await h.client_writes(channel, "typical", "Thanks")
    await h.eventually(dialog, lambda s: s.status == "client_followup")
    await h.close(dialog, bob)
    await h.client_writes(channel, "typical", "1")
    await h.eventually(dialog, lambda s: s.rating is not None)
    await h.result(dialog)
    return dialog.id


async def automatic_actions(h: Harness) -> str:
    """The no-answer text, then an accept and a reply, then an inactivity close."""
    (ann,) = await h.operators(1)
    channel = await h.line(
        [ann],
        {
            "no_answer": {"after": 60, "action": "text"},
            "inactivity": {"after": 3600, "action": "text"},
        },
        handover_after=3600,
    )
    dialog = await h.client_writes(channel, "automatic", "Hello")
    await h.offered(dialog, [ann])
    await h.sleep(61)
    await h.eventually(dialog, lambda s: s.no_answer_sent)
    await h.accept(dialog, ann)
    await h.reply(dialog, ann)
    await h.result(dialog)  # inactivity, then rating_wait
    return dialog.id


async def expired_dialog(h: Harness) -> str:
    """Nobody ever answers: closed after 30 days."""
    channel = await h.line([])
    dialog = await h.client_writes(channel, "expired", "Hello?")
    await h.eventually(dialog, lambda s: "expiry" in s.deadlines)
    await h.result(dialog)
    return dialog.id


async def crm_and_kpi(h: Harness) -> str:
    """A new client with a phone (tracked, a lead owed), a first answer overdue and notified,
    a later message with an email (tracked again), a reply in time, then a close."""
    (ann,) = await h.operators(1)
    (sue,) = await h.operators(1)
    kpi = {"limit": 60, "notify": True, "recipients": [sue]}
    channel = await h.line(
        [ann], {"kpi": {"first_answer": kpi, "further_answer": kpi}}, handover_after=3600
    )
    dialog = await h.client_writes(channel, "crm", "Hello", phone="+16502530999")
    await h.offered(dialog, [ann])
    await h.sleep(61)
    await h.eventually(dialog, lambda s: s.kpi.overdue == 1)
    await h.reply(dialog, ann)
    await h.client_writes(channel, "crm", "Mail me at crm.client@example.com")
    await h.eventually(dialog, lambda s: s.status == "client_followup")
    await h.reply(dialog, ann)
    await h.close(dialog, ann)
    await h.result(dialog)
    return dialog.id


async def bot_dialog(h: Harness) -> str:
    """The line's chat-bot takes a new chat, writes, hands over when asked; the operator
    accepts, replies and closes."""
    (ann,) = await h.operators(1)
    channel, bot_id = await bot_line(h, [ann], handover_after=600)
    dialog = await h.client_writes(channel, "bot", "Hello")
    await with_bot(h, dialog)
    await bot_says(h, dialog, bot_id, "Hi, I am the bot. Let me find someone.")
    await bot_does(dialog, DialogWorkflow.bot_handover, bot_id)
    await h.offered(dialog, [ann])
    await h.accept(dialog, ann)
    await h.reply(dialog, ann)
    await h.close(dialog, ann)
    await h.result(dialog)
    return dialog.id


async def delivery(h: Harness) -> str:
    """A webhook channel's chat: the welcome goes after two 503s, the close text is refused
    (410: failed), the rating request meets an outage that outlasts the retries (given up);
    the run then ends idle."""
    (ann,) = await h.operators(1)
    line = await h.line([ann], {"rating_wait": 0}, handover_after=3600)
    async with serve_receiver() as receiver:
        receiver.answer(503, 503, 200, 410, *[503] * 100)
        channel = await h.channel(line.line_id, "webhook", url=receiver.url)
        dialog = await h.client_writes(channel, "delivery", "Hello")
        await h.offered(dialog, [ann])
        await h.sleep(10)
        await h.accept(dialog, ann)
        await h.close(dialog, ann)
        await h.result(dialog)
        await h.sleep(KEEP_TRYING.total_seconds() + IDLE.total_seconds() + 60)
        handle = h.env.client.get_workflow_handle(delivery_workflow_id(int(dialog.id[5:])))
        await handle.result()
        return handle.id


SCENARIOS: dict[str, Callable[[Harness], Awaitable[str]]] = {
    "typical": typical_dialog,
    "expired": expired_dialog,
    "automatic": automatic_actions,
    "crm-kpi": crm_and_kpi,
    "bot": bot_dialog,
}
# Histories of other workflows, by file name prefix.
OTHER_SCENARIOS: dict[str, Callable[[Harness], Awaitable[str]]] = {"delivery": delivery}


async def record(version: str, only: list[str]) -> None:
    """Record every scenario, or those named in ``only``."""
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{folder}/openlines.db"
        await upgrade_async(url)
        engine = create_engine(url)
        sessions = session_factory(engine)
        scenarios = [(f"dialog-{version}-{n}", s) for n, s in SCENARIOS.items()]
        scenarios += [(f"{n}-{version}", s) for n, s in OTHER_SCENARIOS.items()]
        chosen = [(n, s) for n, s in scenarios if not only or any(o in n for o in only)]
        for name, scenario in chosen:
            async with await WorkflowEnvironment.start_time_skipping(
                test_server_existing_path=find_binary("temporal-test-server"),
                data_converter=pydantic_data_converter,
            ) as env:
                await add_search_attributes(env.client)
                stop = asyncio.Event()
                async with build_worker(env.client, "record", sessions):
                    relaying = asyncio.create_task(relay.run(sessions, env.client, "record", stop))
                    workflow_id = await scenario(Harness(env, sessions, "record"))
                    history = await env.client.get_workflow_handle(workflow_id).fetch_history()
                    stop.set()
                    await relaying
                path = HISTORIES / f"{name}.json"
                path.write_text(history.to_json())
                print(f"{path}: {len(history.events)} events")
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(record(sys.argv[1] if len(sys.argv) > 1 else "v1", sys.argv[2:]))
