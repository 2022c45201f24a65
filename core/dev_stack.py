"""``openlines dev``: the Temporal dev server, the worker and the API on one machine.

Each part runs as its own process in its own session, so Ctrl-C reaches only this
supervisor, which then stops them in order: API, worker, Temporal. Everything is kept in the
data folder (the Temporal state, the SQLite database, the admin key), so a second start keeps
the data of the first.
"""

import asyncio
import errno
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from cryptography.fernet import Fernet
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from core import child_process, migrate, temporal_dev_server
from core.config import Settings
from core.db import printable_url
from core.temporal import connect

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


class DevStackError(Exception):
    """Something a user must fix before the stack can start (a busy port, say)."""


def check_ports_free(settings: Settings) -> None:
    """Fail early, naming the port and the flag that moves it, instead of a crash later."""
    ports = [
        (settings.api_port, "API", "--api-port / OPENLINES_API_PORT"),
        (settings.temporal_port, "Temporal gRPC", "--temporal-port / OPENLINES_TEMPORAL_PORT"),
        (settings.temporal_ui_port, "Temporal UI", "--ui-port / OPENLINES_TEMPORAL_UI_PORT"),
    ]
    for port, what, flag in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((settings.api_host, port))
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    raise
                raise DevStackError(
                    f"port {port} ({what}) is busy: another program, or another openlines, uses "
                    f"it. Choose a free one with {flag}."
                ) from None


def admin_key(data_dir: Path) -> str:
    """The install's admin key: made on the first start, read back on later ones."""
    path = data_dir / "admin-key"
    if path.exists():
        return path.read_text().strip()
    key = f"ol_admin_{secrets.token_urlsafe(24)}"
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def secret_key(data_dir: Path) -> str:
    """The install's key for secrets at rest: made on the first start, read back on later
    ones (losing it makes the stored channel and webhook secrets unreadable)."""
    path = data_dir / "secret-key"
    if path.exists():
        return path.read_text().strip()
    key = Fernet.generate_key().decode()
    # Created with mode 0600, never readable by others even for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(key + "\n")
    return key


def child_env(
    settings: Settings, key: str, database_url: str, encryption_key: str | None = None
) -> dict[str, str]:
    """The API's and the worker's environment; ``encryption_key``, when given, becomes their
    ``OPENLINES_SECRET_KEY``."""
    env = dict(os.environ)
    if encryption_key is not None:
        env["OPENLINES_SECRET_KEY"] = encryption_key
    env.update(
        OPENLINES_DATABASE_URL=database_url,
        OPENLINES_TEMPORAL_ADDRESS=settings.temporal_address,
        OPENLINES_TEMPORAL_UI_URL=settings.temporal_ui_url,
        OPENLINES_BOOTSTRAP_ADMIN_KEY=key,
        OPENLINES_API_HOST=settings.api_host,
        OPENLINES_API_PORT=str(settings.api_port),
        OPENLINES_DATA_DIR=str(settings.data_dir),
        # Local receivers are normal in development; the banner says this is on.
        OPENLINES_WEBHOOK_ALLOW_PRIVATE="true",
        # The sample site with a web chat, linked from the banner.
        OPENLINES_WIDGET_DEMO="true",
    )
    # Emails to web chat visitors go into a folder unless an SMTP server is configured.
    if "OPENLINES_SMTP_URL" not in os.environ:
        env.setdefault("OPENLINES_MAIL_DIR", str(settings.data_dir / "mail"))
    # Links and the web chat's snippet point here unless told otherwise.
    env.setdefault("OPENLINES_PUBLIC_URL", f"http://{settings.api_host}:{settings.api_port}")
    return env


def _openlines(subcommand: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return child_process.spawn([sys.executable, "-m", "cli", subcommand], env=env)


async def start_temporal(settings: Settings, server: subprocess.Popen[bytes]) -> list[str]:
    """Wait for the dev server; register any search attribute it lacks (names returned)."""
    try:
        client = await temporal_dev_server.wait_until_serving(
            server, lambda: connect(settings), STARTUP_TIMEOUT_S
        )
    except (RuntimeError, TimeoutError) as error:
        raise DevStackError(f"{error}; see {settings.data_dir / 'temporal.log'}") from None
    return await temporal_dev_server.ensure_search_attributes(client)


def _name(child: subprocess.Popen[bytes]) -> str:
    args = child.args
    return " ".join(map(str, args[:3])) if isinstance(args, list) else str(args)


def _check_alive(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is not None:
            raise DevStackError(f"{_name(child)} exited with code {child.returncode}")


async def wait_for_api_and_worker(
    settings: Settings, url: str, children: list[subprocess.Popen[bytes]]
) -> None:
    """Ready means the API answers and a worker polls the task queue."""
    client = await connect(settings)
    request = DescribeTaskQueueRequest(
        namespace=settings.temporal_namespace,
        task_queue=TaskQueue(name=settings.task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    async with httpx.AsyncClient(timeout=1) as http:
        while time.monotonic() < deadline:
            _check_alive(children)
            try:
                api_up = (await http.get(f"{url}/healthz")).status_code == 200
            except httpx.TransportError:
                api_up = False
            described = await client.workflow_service.describe_task_queue(request)
            if api_up and described.pollers:
                return
            await asyncio.sleep(0.2)
    raise DevStackError("the API or the worker did not start in time")


def stop_children(children: list[subprocess.Popen[bytes]]) -> None:
    """Stop the children one by one in the given order, politely, then firmly."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def run(settings: Settings) -> int:
    """Start everything, print where it is, and run until Ctrl-C or a part fails."""
    check_ports_free(settings)
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = settings.model_copy(
        update={
            "data_dir": data_dir,
            "temporal_address": f"127.0.0.1:{settings.temporal_port}",
            "temporal_ui_url": f"http://127.0.0.1:{settings.temporal_ui_port}",
        }
    )
    key = (
        settings.bootstrap_admin_key.get_secret_value()
        if settings.bootstrap_admin_key
        else admin_key(data_dir)
    )
    # The environment's key if it sets one (``settings`` read it), else the data folder's.
    encryption_key = (
        settings.secret_key.get_secret_value() if settings.secret_key else secret_key(data_dir)
    )
    database_url = settings.resolved_database_url
    print(f"Applying database migrations to {printable_url(database_url)}", flush=True)
    migrate.upgrade(database_url)

    stopping = False

    def request_stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    print("Starting the Temporal dev server", flush=True)
    temporal = temporal_dev_server.start(
        data_dir / "temporal.db",
        settings.temporal_port,
        settings.temporal_ui_port,
        data_dir / "temporal.log",
    )
    children: list[subprocess.Popen[bytes]] = [temporal]
    try:
        added = asyncio.run(start_temporal(settings, temporal))
        if added:
            print(f"Registered search attributes: {', '.join(added)}", flush=True)
        env = child_env(settings, key, database_url, encryption_key)
        worker = _openlines("worker", env)
        api = _openlines("api", env)
        children = [api, worker, temporal]
        api_url = f"http://{settings.api_host}:{settings.api_port}"
        asyncio.run(wait_for_api_and_worker(settings, api_url, children))
        print(
            "\nopenlines is running\n"
            f"  API         {api_url}\n"
            f"  API docs    {api_url}/docs\n"
            f"  Temporal UI {settings.temporal_ui_url}\n"
            f"  Admin key   {key}\n"
            f"  Data folder {data_dir}\n"
            f"  Console     {api_url}/console (sign in with an operator's key, or the admin key)\n"
            f"  Web chat    {api_url}/widget/demo/<channel id> shows a webchat channel's"
            " widget on a sample site\n"
            f"  Emails      to web chat visitors are written to {data_dir / 'mail'}"
            " (set OPENLINES_SMTP_URL to send them)\n"
            "  Webhooks may POST to private and loopback addresses here"
            " (OPENLINES_WEBHOOK_ALLOW_PRIVATE=true; off in production)\n"
            f"Try: curl -H 'Authorization: Bearer {key}' {api_url}/v1/lines\n"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        while not stopping:
            _check_alive(children)
            time.sleep(0.2)
        print("Stopping openlines...", flush=True)
        return 0
    finally:
        stop_children(children)
