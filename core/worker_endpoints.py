"""The worker's HTTP port (``OPENLINES_WORKER_PORT``): ``/metrics``, ``/healthz``, ``/readyz``.

``/metrics`` is one scrape of two sources: openlines' own metrics (``core.metrics``, the
prometheus_client registry) and the Temporal SDK's (task slots, poll and schedule-to-start
latencies, sticky cache, ...). The SDK serves its metrics on a port of its own, bound to
loopback here; ``/metrics`` appends them, so a scraper sees one target per worker.

``/healthz`` answers while the event loop runs (a stuck loop cannot answer it);
``/readyz`` answers 200 only while the worker's Temporal worker runs (it polls its task
queue) and the worker is not stopping.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from core import local_http


class Readiness:
    """Whether the worker polls its task queue now: its Temporal worker runs and it is not
    stopping."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.worker: Worker | None = None  # set once it polls
        self._stop = stop

    @property
    def ready(self) -> bool:
        return self.worker is not None and self.worker.is_running and not self._stop.is_set()


def runtime_with_metrics() -> tuple[Runtime, str]:
    """A Temporal runtime exporting the SDK's metrics on a free loopback port, and their URL."""
    port = local_http.free_port()  # the SDK binds it next
    runtime = Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=f"127.0.0.1:{port}",
                counters_total_suffix=True,
                durations_as_seconds=True,
            )
        )
    )
    return runtime, f"http://127.0.0.1:{port}/metrics"


def app(readiness: Readiness, sdk_metrics_url: str | None) -> Starlette:
    """The port's three routes."""
    http = httpx.AsyncClient(timeout=5.0)

    async def metrics(_: Request) -> Response:
        body = generate_latest()
        if sdk_metrics_url is not None:
            try:
                body += (await http.get(sdk_metrics_url)).content
            except httpx.HTTPError:  # still ours; the SDK's are back at the next scrape
                pass
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(_: Request) -> Response:
        if readiness.ready:
            return PlainTextResponse("ready")
        return PlainTextResponse("not polling", status_code=503)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with http:
            yield

    return Starlette(
        routes=[Route("/metrics", metrics), Route("/healthz", healthz), Route("/readyz", readyz)],
        lifespan=lifespan,
    )


class PortUnavailable(Exception):
    """The worker's port cannot be bound (taken, or not an address of this host)."""


@contextlib.asynccontextmanager
async def serving(
    host: str, port: int, readiness: Readiness, sdk_metrics_url: str | None
) -> AsyncIterator[None]:
    """Serve the port for the duration of the block."""
    try:
        bound = local_http.bound_socket(host, port)
    except OSError as error:
        raise PortUnavailable(
            f"cannot serve /metrics and probes on {host}:{port} (OPENLINES_WORKER_HOST, "
            f"OPENLINES_WORKER_PORT): {error.strerror}"
        ) from None
    async with local_http.serving(app(readiness, sdk_metrics_url), bound, lifespan="on"):
        yield
