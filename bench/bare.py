"""Bare Temporal, the yardstick of item 3: a minimal workflow and its worker process.

Each dialog's stand-in is started by signal-with-start (as the relay starts a dialog), runs
one no-op activity and waits for a signal that never comes. The activity appends
``<workflow id> <time.time()>`` to a file, which the benchmark reads to see it done. Run as
``python -m bench.bare --address HOST:PORT --task-queue Q --out FILE`` until SIGTERM; it uses
the SDK's default worker settings, as openlines' worker does.
"""

import argparse
import asyncio
import signal
import time
from datetime import timedelta
from typing import IO

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

WORKFLOW = "BenchBare"
START_SIGNAL = "go"


class BareActivities:
    """The one no-op activity, which only notes when it ran."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out

    @activity.defn(name="bench_bare_noop")
    async def noop(self, workflow_id: str) -> None:
        self._out.write(f"{workflow_id} {time.time():.6f}\n")


@workflow.defn(name=WORKFLOW)
class BareWorkflow:
    """Signal-with-start, one activity, then wait for a signal."""

    def __init__(self) -> None:
        self._started = False
        self._finished = False

    @workflow.signal(name=START_SIGNAL)
    def go(self, seq: int) -> None:
        self._started = True

    @workflow.signal
    def finish(self) -> None:
        self._finished = True

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self._started)
        await workflow.execute_activity_method(
            BareActivities.noop,
            workflow.info().workflow_id,
            start_to_close_timeout=timedelta(seconds=30),
        )
        await workflow.wait_condition(lambda: self._finished)


async def serve(address: str, namespace: str, task_queue: str, out: IO[str]) -> None:
    """Poll ``task_queue`` until SIGTERM or SIGINT, noting finished activities in ``out``."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    client = await Client.connect(address, namespace=namespace)
    activities = BareActivities(out)
    async with Worker(
        client, task_queue=task_queue, workflows=[BareWorkflow], activities=[activities.noop]
    ):
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare", description=__doc__)
    parser.add_argument("--address", required=True)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with open(args.out, "a", buffering=1) as out:  # line-buffered: each line is seen at once
        asyncio.run(serve(args.address, args.namespace, args.task_queue, out))


if __name__ == "__main__":
    main()
