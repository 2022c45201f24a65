"""``openlines dev`` run as a user runs it, on free ports and a given data folder: started,
read, stopped by tests."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from core.local_http import free_port
from tests.conftest import empty_postgres_database

STARTED = "openlines is running"


class Stack:
    """One ``openlines dev`` process and what it printed."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.api_port, self.temporal_port, self.ui_port = free_port(), free_port(), free_port()
        self.data_dir = data_dir
        self.env = env or {}  # OPENLINES_ settings; the caller's own are not passed on
        self.output: list[str] = []
        self.process: subprocess.Popen[str] | None = None

    def args(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "cli",
            "dev",
            "--api-port",
            str(self.api_port),
            "--temporal-port",
            str(self.temporal_port),
            "--ui-port",
            str(self.ui_port),
            "--data-dir",
            str(self.data_dir),
        ]

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINES_")}
        env.update(self.env)
        self.output = []
        self.process = subprocess.Popen(
            self.args(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        deadline = time.monotonic() + 90
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if STARTED in line:
                break
            assert time.monotonic() < deadline, "".join(self.output)
        else:
            pytest.fail("openlines dev exited early:\n" + "".join(self.output))
        # Keep reading the rest of the banner (and later logs) so the pipe never fills.
        for line in self.process.stdout:
            self.output.append(line)
            if "Press Ctrl-C" in line:
                break

    def drain(self) -> None:
        """Keep reading the logs in the background, for a stack that will log a lot (a full
        pipe would stop it)."""
        assert self.process is not None and self.process.stdout is not None
        lines = self.process.stdout
        threading.Thread(target=lambda: self.output.extend(lines), daemon=True).start()

    def printed(self, label: str) -> str:
        line = next(line for line in self.output if line.strip().startswith(label))
        return line.split(label, 1)[1].strip()

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            return self.process.wait(30)
        finally:
            if self.process.poll() is None:
                self.process.kill()


@asynccontextmanager
async def stack_database(kind: str) -> AsyncIterator[dict[str, str]]:
    """A stack's database settings: its own SQLite file, or a new PostgreSQL database."""
    if kind == "sqlite":
        yield {}
        return
    async with empty_postgres_database() as url:
        yield {"OPENLINES_DATABASE_URL": url}
