"""HTTP request metrics, labelled by route template (not by raw path, which holds ids)."""

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "openlines_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram("openlines_http_request_seconds", "HTTP request duration", ["method", "route"])


def install(app: FastAPI) -> None:
    @app.middleware("http")
    async def _measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        REQUESTS.labels(request.method, template, str(response.status_code)).inc()
        LATENCY.labels(request.method, template).observe(time.perf_counter() - started)
        return response
