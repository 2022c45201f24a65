"""Service endpoints: liveness, and readiness: the database, with Temporal reported beside it.

Readiness is checked against a real Temporal (the time-skipping test server answers the
gRPC health check) and against addresses nobody listens on.
"""

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import generate_latest
from temporalio.testing import WorkflowEnvironment

from api import metrics
from api.app import create_app
from core.config import Settings
from core.local_http import free_port
from core.temporal_dev_server import find_binary
from tests.conftest import client_for

PROBLEM_JSON = "application/problem+json"


@asynccontextmanager
async def temporal_test_server(port: int | None = None) -> AsyncIterator[str]:
    """A Temporal test server (on ``port`` if given); its address."""
    async with await WorkflowEnvironment.start_time_skipping(
        port=port, test_server_existing_path=find_binary("temporal-test-server")
    ) as environment:
        yield environment.client.service_client.config.target_host


@pytest.fixture
async def temporal_address() -> AsyncIterator[str]:
    async with temporal_test_server() as address:
        yield address


@asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[FastAPI]:
    """An app with its lifespan running, for databases the ``make_app`` fixture cannot use."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


def unreachable_database(backend: str, tmp_path: Path) -> str:
    """A database URL that fails to connect: a SQLite file in a folder that does not exist,
    or a PostgreSQL port nobody listens on."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'openlines.db'}"
    return f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"


async def readyz(app: FastAPI) -> Any:
    async with client_for(app, None) as anonymous:  # probes carry no key
        return await anonymous.get("/readyz")


def assert_not_ready(response: Any, detail: str) -> None:
    """A 503 problem whose detail matches ``detail``, where ``ERROR`` is an exception's name."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    problem = response.json()
    assert (problem["status"], problem["title"]) == (503, "Service unavailable")
    pattern = re.escape(detail).replace("ERROR", r"[A-Za-z]+")
    assert re.fullmatch(pattern, problem["detail"]), problem["detail"]


async def test_ready_when_the_database_and_temporal_answer(
    make_app: Callable[..., Any], temporal_address: str
):
    app = await make_app(temporal_address=temporal_address)
    response = await readyz(app)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "database": "ok", "temporal": "ok"}


async def test_ready_while_temporal_is_unreachable_which_is_reported_until_it_answers(
    make_app: Callable[..., Any],
):
    """Inbound messages need only the database, so a Temporal outage does not take the API
    out of rotation. The failed connection is not kept: the next probe connects afresh."""
    port = free_port()
    app = await make_app(temporal_address=f"127.0.0.1:{port}")
    response = await readyz(app)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ready",
        "database": "ok",
        "temporal": "unavailable: cannot connect",
    }
    async with temporal_test_server(port):
        response = await readyz(app)
        assert response.status_code == 200, response.text
        assert response.json()["temporal"] == "ok"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_not_ready_while_the_database_is_unreachable(
    backend: str, tmp_path: Path, temporal_address: str
):
    settings = Settings(
        database_url=unreachable_database(backend, tmp_path), temporal_address=temporal_address
    )
    async with started(settings) as app:
        response = await readyz(app)
    assert_not_ready(response, "not ready: database unavailable: ERROR")
    assert response.json()["temporal"] == "ok"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_not_ready_names_both_when_nothing_answers_yet_the_process_is_alive(
    backend: str, tmp_path: Path
):
    settings = Settings(
        database_url=unreachable_database(backend, tmp_path),
        temporal_address=f"127.0.0.1:{free_port()}",
    )
    async with started(settings) as app:
        response = await readyz(app)
        assert_not_ready(response, "not ready: database unavailable: ERROR")
        assert response.json()["temporal"] == "unavailable: cannot connect"
        async with client_for(app, None) as anonymous:
            health = await anonymous.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}


def requests_counted(metrics: str, method: str, route: str, status: int) -> float:
    """The value of ``openlines_http_requests_total`` for these labels (0 before the first)."""
    labels = f'method="{method}",route="{route}",status="{status}"'
    for line in metrics.splitlines():
        if line.startswith(f"openlines_http_requests_total{{{labels}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_answer_without_a_key_and_count_failed_probes(tmp_path: Path):
    settings = Settings(
        database_url=unreachable_database("sqlite", tmp_path),
        temporal_address=f"127.0.0.1:{free_port()}",
    )
    async with started(settings) as app, client_for(app, None) as anonymous:
        before = (await anonymous.get("/metrics")).text
        assert (await anonymous.get("/readyz")).status_code == 503
        assert (await anonymous.get("/readyz")).status_code == 503
        response = await anonymous.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    counted = requests_counted(response.text, "GET", "/readyz", 503)
    assert counted - requests_counted(before, "GET", "/readyz", 503) == 2


def series(metrics: str) -> set[str]:
    """Every request series (name and labels) the exposition holds."""
    return {
        line.rsplit(" ", 1)[0]
        for line in metrics.splitlines()
        if line.startswith(("openlines_http_requests_total{", "openlines_http_request_seconds_"))
    }


async def test_random_methods_and_paths_add_no_series(tmp_path: Path):
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    async with started(settings) as app, client_for(app, None) as anonymous:
        for n in range(20):  # every label value these requests can reach, seen once
            await anonymous.request(f"M{n}", f"/nowhere/{n}")
            await anonymous.get(f"/v1/dialogs/{n}")
        await anonymous.get("/metrics")  # the scrape is counted once it has answered
        before = series((await anonymous.get("/metrics")).text)
        for n in range(1000):
            await anonymous.request(f"X{n}Y", f"/random/{n}/path")
            await anonymous.get(f"/v1/dialogs/{1000 + n}")
        after = series((await anonymous.get("/metrics")).text)
    assert after == before
    assert any('method="other",route="unmatched"' in s for s in after)
    assert not any("/random/" in s or "X1Y" in s for s in after)


async def test_metrics_can_move_to_their_own_port(tmp_path: Path):
    port = free_port()
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", metrics_port=port
    )
    async with started(settings) as app, client_for(app, None) as anonymous:
        await anonymous.get("/healthz")
        on_the_api = await anonymous.get("/metrics")
        async with httpx.AsyncClient() as scraper:
            scraped = await scraper.get(f"http://127.0.0.1:{port}/metrics")
    assert on_the_api.status_code == 404
    assert scraped.status_code == 200
    assert requests_counted(scraped.text, "GET", "/healthz", 200) >= 1


async def test_event_streams_are_counted_but_not_timed():
    """A stream lasts as long as its client stays; timing it would bury the request
    latencies of the dashboard and the alerts."""
    app = FastAPI()
    metrics.install(app)

    @app.get("/v1/events")
    async def stream() -> dict[str, str]:
        return {}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        before = generate_latest().decode()
        assert (await client.get("/v1/events")).status_code == 200
        after = generate_latest().decode()
    assert requests_counted(after, "GET", "/v1/events", 200) == (
        requests_counted(before, "GET", "/v1/events", 200) + 1
    )
    assert 'openlines_http_request_seconds_count{method="GET",route="/v1/events"}' not in after
