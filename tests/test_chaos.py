"""``python -m bench.chaos --short`` end to end: the worker, Temporal, the API and PostgreSQL
crash under inbound load, and every check of the run passes (exit code 0).

It needs the local PostgreSQL server (it makes its own database there and restarts the
cluster once): skipped when the server cannot be reached, a failure instead under
``OPENLINES_TEST_REQUIRE_POSTGRES=1`` as in ``conftest.py``.
"""

import os
import subprocess
import sys

import psycopg
import pytest

from tests.conftest import POSTGRES_SKIPPED, POSTGRES_URL, REQUIRE_POSTGRES
from tests.test_bench import REPO


def require_postgres() -> None:
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg.OperationalError as error:
        message = f"{POSTGRES_SKIPPED}: cannot reach {POSTGRES_URL} ({error})".strip()
        if REQUIRE_POSTGRES:
            pytest.fail(message)
        pytest.skip(message)


def test_short_chaos_run_passes_every_check():
    require_postgres()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINES_")}
    done = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--short", "--postgres", POSTGRES_URL],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(done.stdout)  # the table, for ``pytest -rP`` and CI logs
    assert "openlines chaos run" in done.stdout, done.stdout + done.stderr
    assert done.returncode == 0, done.stdout + done.stderr
