"""The chaos run's system: Temporal on its state file, the worker and the API, each a process
of its own that can be killed with SIGKILL and started again, on a PostgreSQL cluster of this
machine that can be restarted; how long each takes to be back is measured here.

Readiness is what a client needs, not a started process: Temporal answers, the API's
``/healthz`` answers, the restarted worker (by its pid) polls the task queue, PostgreSQL
accepts a connection.
"""

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
from sqlalchemy.engine import make_url
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

from bench.database import Database, libpq_url
from bench.stack import spawn_logged, stack_settings
from core import dev_stack, temporal_dev_server
from core.config import Settings
from core.temporal import connect

READY_TIMEOUT_S = 90.0
POLL_S = 0.2


class ChaosSetupError(Exception):
    """The run cannot start here (no local PostgreSQL cluster to restart, say)."""


@dataclass(frozen=True)
class Cluster:
    """The local PostgreSQL cluster ``pg_ctlcluster`` restarts."""

    version: str
    name: str
    port: int


def find_cluster(server_url: str) -> Cluster:
    """The cluster of this machine listening on the server URL's port (``pg_lsclusters``)."""
    url = make_url(server_url)
    port = url.port or 5432
    if url.host not in (None, "", "127.0.0.1", "localhost", "::1"):
        raise ChaosSetupError(f"PostgreSQL at {url.host} is not on this machine: cannot restart it")
    try:
        listed = subprocess.run(
            ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        raise ChaosSetupError(
            f"pg_lsclusters failed ({error}): cannot restart PostgreSQL"
        ) from None
    for line in listed.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == str(port):
            return Cluster(version=fields[0], name=fields[1], port=port)
    raise ChaosSetupError(f"no PostgreSQL cluster of this machine listens on port {port}")


class ChaosStack:
    """The processes, started, killed and started again by name: temporal, worker, api."""

    def __init__(self, data_dir: Path, database: Database, cluster: Cluster) -> None:
        self.data_dir = data_dir
        self.database = database
        self.cluster = cluster
        self.settings: Settings
        self.settings, self.admin_key = stack_settings(data_dir, database)
        self.api_url = f"http://127.0.0.1:{self.settings.api_port}"
        self.env = dev_stack.child_env(self.settings, self.admin_key, database.url)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._client: Client | None = None  # for readiness; dropped when a call fails

    async def migrate(self) -> None:
        """``openlines migrate`` on the run's database, as an operator would run it."""
        with (self.data_dir / "migrate.log").open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cli", "migrate", env=self.env, stdout=log, stderr=log
            )
            if await process.wait() != 0:
                raise ChaosSetupError(f"openlines migrate failed; see {self.data_dir}/migrate.log")

    async def start_all(self) -> None:
        """Temporal, then the worker and the API; returns once all of them serve."""
        await self.migrate()
        self.start_temporal()
        await dev_stack.start_temporal(self.settings, self.processes["temporal"])
        self.start("worker")
        self.start("api")
        everything = list(self.processes.values())
        await dev_stack.wait_for_api_and_worker(self.settings, self.api_url, everything)

    def start_temporal(self) -> None:
        """The dev server on the run's state file (the same file on every start)."""
        self.processes["temporal"] = temporal_dev_server.start(
            self.data_dir / "temporal.db",
            self.settings.temporal_port,
            self.settings.temporal_ui_port,
            self.data_dir / "temporal.log",
        )

    def start(self, name: str) -> None:
        """``openlines worker`` or ``openlines api``, logging to ``<name>.log``."""
        command = [sys.executable, "-m", "cli", name]
        self.processes[name] = spawn_logged(command, self.env, self.data_dir / f"{name}.log")

    def kill(self, name: str) -> None:
        """SIGKILL, as a crash or an OOM kill would end it; waits until it is gone."""
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait()

    async def restart(self, name: str) -> None:
        """Start the process again and wait until it serves."""
        if name == "temporal":
            self.start_temporal()
            await self.temporal_ready()
        else:
            self.start(name)
            await (self.worker_ready() if name == "worker" else self.api_ready())

    async def temporal_ready(self) -> None:
        await temporal_dev_server.wait_until_serving(
            self.processes["temporal"], lambda: connect(self.settings), READY_TIMEOUT_S
        )

    async def api_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                self._alive("api")
                try:
                    if (await http.get(f"{self.api_url}/healthz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                self._give_up_after(deadline, "the API")
                await asyncio.sleep(POLL_S)

    async def worker_ready(self) -> None:
        """The new worker polls: a poller of the task queue has its pid in its identity (a
        killed worker's poller stays listed for a while, so any poller would not do)."""
        identity = f"{self.processes['worker'].pid}@"
        request = DescribeTaskQueueRequest(
            namespace=self.settings.temporal_namespace,
            task_queue=TaskQueue(name=self.settings.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            self._alive("worker")
            try:
                self._client = self._client or await connect(self.settings)
                described = await self._client.workflow_service.describe_task_queue(request)
                if any(p.identity.startswith(identity) for p in described.pollers):
                    return
            except (RuntimeError, RPCError):
                self._client = None  # Temporal is not answering yet
            self._give_up_after(deadline, "the worker")
            await asyncio.sleep(POLL_S)

    async def restart_postgres(self) -> None:
        """``pg_ctlcluster ... restart -m immediate`` (a crash and recovery), then wait until
        it accepts connections. The server is started in a session of its own with no pipe
        of ours, so it outlives this run and never holds a caller's output open."""
        cluster = self.cluster
        with (self.data_dir / "postgres-restart.log").open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                "pg_ctlcluster",
                "--skip-systemctl-redirect",
                cluster.version,
                cluster.name,
                "restart",
                "-m",
                "immediate",
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
            if await process.wait() != 0:
                raise RuntimeError(f"pg_ctlcluster restart failed; see {log.name}")
        await self.postgres_ready()

    async def postgres_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        url = libpq_url(self.database.url)
        while True:
            try:
                connection = await psycopg.AsyncConnection.connect(url, connect_timeout=2)
            except psycopg.OperationalError:
                self._give_up_after(deadline, "PostgreSQL")
                await asyncio.sleep(POLL_S)
                continue
            await connection.close()
            return

    def _alive(self, name: str) -> None:
        process = self.processes[name]
        if process.poll() is not None:
            log = self.data_dir / f"{name}.log"
            raise RuntimeError(f"{name} exited with code {process.returncode}; see {log}")

    @staticmethod
    def _give_up_after(deadline: float, what: str) -> None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} was not back within {READY_TIMEOUT_S:g} s")

    def stop_all(self) -> None:
        """As ``openlines dev`` stops: API first, then the worker, Temporal last."""
        order = ("api", "worker", "temporal")
        dev_stack.stop_children([self.processes[n] for n in order if n in self.processes])


@asynccontextmanager
async def running(
    data_dir: Path, database: Database, cluster: Cluster
) -> AsyncIterator[ChaosStack]:
    """The whole system, serving; every process stopped when the block ends."""
    stack = ChaosStack(data_dir, database, cluster)
    dev_stack.check_ports_free(stack.settings)
    try:
        await stack.start_all()
        yield stack
    finally:
        stack.stop_all()
