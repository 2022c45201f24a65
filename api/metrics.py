"""HTTP request metrics, labelled by route template (not by raw path, which holds ids).

Every label takes a bounded set of values, so no request can add series: the method is one
of the HTTP methods the API knows (``other`` for any other), the route its template
(``unmatched`` for a path no route has), the status a code the API answers.

A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` runs every request through an
extra task and memory stream, which costs more than the handler of a small request.
"""

import time

from fastapi import FastAPI
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "openlines_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
LATENCY = Histogram("openlines_http_request_seconds", "HTTP request duration", ["method", "route"])
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Event streams last as long as their client stays: counted, but not timed, so they do not
# bury the request latencies.
STREAMS = frozenset({"/v1/events", "/v1/webchat/{code}/events"})


class RequestMetrics:
    """Counts each HTTP request by method, route template and status, and times it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless the app starts a response

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            # The router put the matched route into the scope on its way through.
            template = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"] if scope["method"] in METHODS else "other"
            REQUESTS.labels(method, template, str(status)).inc()
            if template not in STREAMS:
                LATENCY.labels(method, template).observe(time.perf_counter() - started)


def install(app: FastAPI) -> None:
    app.add_middleware(RequestMetrics)
