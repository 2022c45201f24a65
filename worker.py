"""The Temporal worker: runs the dialog workflows and every activity on one task queue.

Workers keep no state of their own, so run as many as the load needs.
"""

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from core.config import Settings, get_settings
from core.temporal import connect
from workflows.dialog import DialogWorkflow

log = logging.getLogger("openlines.worker")

WORKFLOWS: Sequence[type] = (DialogWorkflow,)
ACTIVITIES: Sequence[Callable[..., Any]] = ()


def build_worker(client: Client, settings: Settings) -> Worker:
    """A worker for every workflow and activity of openlines on the configured task queue."""
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=list(WORKFLOWS),
        activities=list(ACTIVITIES),
    )


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Poll the task queue until ``stop`` is set, then finish running tasks and return."""
    client = await connect(settings)
    async with build_worker(client, settings):
        log.info(
            "worker polling task queue %r on %s (namespace %s)",
            settings.task_queue,
            settings.temporal_address,
            settings.temporal_namespace,
        )
        await stop.wait()
    log.info("worker stopped")


def main() -> None:
    """Run until SIGINT or SIGTERM."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(get_settings(), stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
