"""The system under test, started the way ``openlines dev`` starts it (its own functions,
composed), but on free ports and the run's own folder and database, plus the bare-Temporal
worker of item 3. Every process is stopped when the block ends, however it ends."""

import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client

from bench.database import Database
from core import child_process, dev_stack, migrate, temporal_dev_server
from core.config import Settings
from core.local_http import free_port
from core.temporal import connect

BARE_TASK_QUEUE = "bench-bare"
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Stack:
    """Where the running system is and how to reach it."""

    settings: Settings
    admin_key: str
    api_url: str
    database: Database
    processes: dict[str, subprocess.Popen[bytes]]
    client: Client
    bare_log: Path


def spawn_logged(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A child process (``core.child_process``) whose output is appended to ``log``."""
    with log.open("ab") as output:
        return child_process.spawn(args, env=env, output=output)


def stack_settings(data_dir: Path, database: Database) -> tuple[Settings, str]:
    """Settings on free ports in ``data_dir``, with a new bootstrap admin key (returned too)."""
    temporal_port, ui_port, api_port = free_port(), free_port(), free_port()
    key = f"ol_admin_{secrets.token_urlsafe(24)}"
    settings = Settings(
        data_dir=data_dir,
        database_url=database.url,
        api_host="127.0.0.1",
        api_port=api_port,
        temporal_port=temporal_port,
        temporal_ui_port=ui_port,
        temporal_address=f"127.0.0.1:{temporal_port}",
        temporal_ui_url=f"http://127.0.0.1:{ui_port}",
        bootstrap_admin_key=key,
    )
    return settings, key


@asynccontextmanager
async def running(data_dir: Path, database: Database) -> AsyncIterator[Stack]:
    """Temporal dev server, worker, API and bare worker, ready; stopped at the end."""
    settings, key = stack_settings(data_dir, database)
    temporal_port, ui_port = settings.temporal_port, settings.temporal_ui_port
    dev_stack.check_ports_free(settings)
    await migrate.upgrade_async(database.url)
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        processes["temporal"] = temporal_dev_server.start(
            data_dir / "temporal.db", temporal_port, ui_port, data_dir / "temporal.log"
        )
        await dev_stack.start_temporal(settings, processes["temporal"])
        env = dev_stack.child_env(settings, key, database.url)
        # The load comes from one address and one key at rates past the flood limits, which
        # would measure the limiter: they are off here (the limiter's own cost is a dict
        # lookup per request).
        env |= {f"OPENLINES_RATE_LIMIT_PER_{part}": "0" for part in ("KEY", "CHANNEL", "IP")}
        for name in ("worker", "api"):
            command = [sys.executable, "-m", "cli", name]
            processes[name] = spawn_logged(command, env, data_dir / f"{name}.log")
        bare_log = data_dir / "bare-done.log"
        # ``bench`` is importable from the repository even where only the app is installed.
        bare_env = {
            **env,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        }
        bare_command = [
            sys.executable,
            "-m",
            "bench.bare",
            f"--address={settings.temporal_address}",
            f"--namespace={settings.temporal_namespace}",
            f"--task-queue={BARE_TASK_QUEUE}",
            f"--out={bare_log}",
        ]
        processes["bare"] = spawn_logged(bare_command, bare_env, data_dir / "bare.log")
        api_url = f"http://127.0.0.1:{settings.api_port}"
        everything = list(processes.values())
        await dev_stack.wait_for_api_and_worker(settings, api_url, everything)
        bare_queue = settings.model_copy(update={"task_queue": BARE_TASK_QUEUE})
        await dev_stack.wait_for_api_and_worker(bare_queue, api_url, everything)
        client = await connect(settings)
        yield Stack(settings, key, api_url, database, processes, client, bare_log)
    finally:
        # As ``openlines dev`` stops: API first, then the workers, Temporal last.
        order = ("api", "worker", "bare", "temporal")
        dev_stack.stop_children([processes[name] for name in order if name in processes])
