"""The Temporal worker: runs the dialog workflows, their activities and the outbox relay.

Workers keep no state of their own, so run as many as the load needs; the relay's rows are
shared out between them with row locks (PostgreSQL).
"""

import asyncio
import contextlib
import logging
import signal
from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

import relay
from activities.auto_replies import AutoReplyActivities
from activities.chat_tracker import ChatTrackerActivities
from activities.crm import CrmActivities
from activities.dialogs import DialogActivities
from activities.kpi import KpiActivities
from activities.operators import OperatorActivities
from activities.webhooks import WebhookActivities
from channels.delivery import DeliveryActivities
from channels.webchat import emails as visitor_emails
from core import logs, metrics, temporal_check, tracing, worker_endpoints
from core.background import in_background
from core.config import Settings, get_settings
from core.crm.backends import BuiltinCrm, CrmBackend, backend_for
from core.db import create_engine, session_factory
from core.relay_wakeups import Wakeups
from workflows.channel_delivery import ChannelDeliveryWorkflow
from workflows.crm_sync import CrmSyncWorkflow
from workflows.dialog import DialogWorkflow
from workflows.late_rating import LateRatingWorkflow
from workflows.vacation import VacationWorkflow
from workflows.webhook_delivery import WebhookDeliveryWorkflow

log = logging.getLogger("openlines.worker")

SHUTDOWN_GRACE = timedelta(seconds=10)
# Under the CRM activities' start_to_close (30 s), so an attempt ends before the next starts.
CRM_HTTP_TIMEOUT_S = 10.0


def build_worker(
    client: Client,
    task_queue: str,
    sessions: async_sessionmaker[AsyncSession],
    config: Settings | None = None,
    crm: CrmBackend | None = None,
) -> Worker:
    """A worker for every workflow and activity of openlines."""
    dialogs = DialogActivities(sessions)
    operators = OperatorActivities(sessions)
    auto_replies = AutoReplyActivities(sessions)
    config = config or Settings()
    crm = crm or BuiltinCrm()
    chat_tracker = ChatTrackerActivities(
        sessions, config.default_phone_region, builtin_crm=isinstance(crm, BuiltinCrm)
    )
    kpi = KpiActivities(sessions, config.public_url)
    leads = CrmActivities(sessions, crm)
    delivery = DeliveryActivities(sessions, config)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[
            DialogWorkflow,
            LateRatingWorkflow,
            VacationWorkflow,
            CrmSyncWorkflow,
            WebhookDeliveryWorkflow,
            ChannelDeliveryWorkflow,
        ],
        # On shutdown, let running activities finish their transaction instead of cutting it
        # off: a cancelled SQLite transaction can keep the database locked for everyone.
        graceful_shutdown_timeout=SHUTDOWN_GRACE,
        # Log lines of activities name the dialog they work on (core.logs).
        interceptors=[logs.DialogIdInterceptor()],
        # No sandbox: it re-imported each workflow's modules for every run and proxied their
        # standard library, about a third of the worker's CPU per dialog (BENCHMARKS.md).
        # Determinism is kept by tests instead: tests/workflows/test_determinism_lint.py
        # forbids I/O, clocks, randomness and shared state in workflows/, and the stored
        # histories replay in the sandbox (tests/workflows/test_replay.py).
        workflow_runner=UnsandboxedWorkflowRunner(),
        activities=[
            operators.availability_changed,
            dialogs.enter_queue,
            dialogs.bot_replied,
            dialogs.current_routing,
            dialogs.check_owner,
            dialogs.hand_over,
            dialogs.accept,
            dialogs.skip,
            dialogs.reply,
            dialogs.transfer,
            dialogs.project,
            auto_replies.greet,
            auto_replies.send_text,
            auto_replies.start_closing,
            auto_replies.record_rating,
            chat_tracker.track,
            kpi.overdue,
            leads.create_lead,
            leads.reassign_lead,
            WebhookActivities(sessions, allow_private=config.webhook_allow_private).deliver,
            delivery.send,
            delivery.give_up,
        ],
    )


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Poll the task queue and relay the outbox until ``stop`` is set.

    Fails with ``TemporalNotReady`` before anything starts when the cluster cannot serve
    openlines (unreachable, no namespace, search attributes missing).
    """
    runtime, sdk_metrics_url = (None, None)
    if settings.worker_port is not None:
        runtime, sdk_metrics_url = worker_endpoints.runtime_with_metrics()
    client = await temporal_check.require(settings, runtime)
    engine = create_engine(settings.resolved_database_url)
    sessions = session_factory(engine)
    readiness = worker_endpoints.Readiness(stop)
    try:
        async with contextlib.AsyncExitStack() as stack:
            if settings.worker_port is not None:
                await stack.enter_async_context(
                    worker_endpoints.serving(
                        settings.worker_host, settings.worker_port, readiness, sdk_metrics_url
                    )
                )
            http = await stack.enter_async_context(httpx.AsyncClient(timeout=CRM_HTTP_TIMEOUT_S))
            polling = await stack.enter_async_context(
                build_worker(
                    client, settings.task_queue, sessions, settings, backend_for(settings, http)
                )
            )
            log.info(
                "worker polling task queue %r on %s (namespace %s)",
                settings.task_queue,
                settings.temporal_address,
                settings.temporal_namespace,
            )
            wakeups = await stack.enter_async_context(
                Wakeups(settings.resolved_database_url).listening()
            )
            for chore in (
                visitor_emails.run(sessions, settings, stop),
                metrics.keep_sampling(sessions, stop),
            ):
                await stack.enter_async_context(in_background(chore))
            readiness.worker = polling
            await relay.run(
                sessions, client, settings.task_queue, stop, settings.max_history_events, wakeups
            )
    finally:
        await engine.dispose()
    log.info("worker stopped")


def main() -> None:
    """Run until SIGINT or SIGTERM."""
    settings = get_settings()
    logs.setup(settings.log_format)
    tracing.setup("openlines-worker")

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
