"""The OpenAPI schema tells the truth: schemathesis, with all its checks and its stateful
phase, against a running ``openlines dev`` on each database.

Client generators and API users build on the schema, so it must document every status and
content type the API answers, and every rule a request is refused for. Schemathesis
generates requests from the schema (valid ones and invalid ones) and fails on a 5xx, an
undocumented answer, a valid request refused or an invalid one accepted. What it must know
beyond JSON Schema is in tests/schemathesis_hooks.py.
"""

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.channels.telegram_fake import FakeTelegram
from tests.dev_stack import Stack, stack_database

# Examples per operation and phase: enough to reach every operation's rules in CI's time.
EXAMPLES = int(os.environ.get("OPENLINES_SCHEMATHESIS_EXAMPLES", "10"))
SEED = os.environ.get("OPENLINES_SCHEMATHESIS_SEED", "20261202")  # "random" for a new one


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_schemathesis_finds_nothing(kind: str, tmp_path: Path, telegram_fake: FakeTelegram):
    telegram_fake.any_token = True
    async with stack_database(kind) as settings:
        stack = Stack(
            tmp_path / "data",
            env={
                **settings,
                # Its thousands of requests per second are the point here.
                "OPENLINES_RATE_LIMIT_PER_KEY": "0",
                "OPENLINES_RATE_LIMIT_PER_CHANNEL": "0",
                "OPENLINES_RATE_LIMIT_PER_IP": "0",
                "OPENLINES_TELEGRAM_API_URL": telegram_fake.url,
            },
        )
        stack.start()
        stack.drain()
        try:
            code, report = await schemathesis(stack)
        finally:
            assert stack.stop() == 0, "".join(stack.output[-50:])
    assert code == 0, report


async def schemathesis(stack: Stack) -> tuple[int, str]:
    """Run the schemathesis CLI against the stack; its exit code and report."""
    api = stack.printed("API ")
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "run", f"{api}/openapi.json"),
        *("--header", f"Authorization: Bearer {stack.printed('Admin key')}"),
        # One worker: hypothesis reads lambdas' source with ``ast`` and, on Python 3.11, that
        # can fail with "AST constructor recursion depth mismatch" when threads do it at once.
        *("--checks", "all", "--max-examples", str(EXAMPLES), "--workers", "1"),
        *("--request-timeout", "30", "--no-color", "--generation-database", ":memory:"),
        # Endless event streams: their own tests cover them (tests/api/test_events_stream.py,
        # tests/api/test_webchat_live.py).
        *("--exclude-path", "/v1/events", "--exclude-path", "/v1/webchat/{code}/events"),
        *(() if SEED == "random" else ("--seed", SEED)),
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks"}
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        cwd=Path(__file__).parent.parent,
    )
    output, _ = await process.communicate()
    report = output.decode(errors="replace")
    print(report[-3000:])  # the summary, in the test's captured output
    assert process.returncode is not None
    return process.returncode, report
