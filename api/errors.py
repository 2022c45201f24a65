"""Problem details (RFC 9457) for every error the API returns."""

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path
from temporalio.client import RPCTimeoutOrCancelledError
from temporalio.service import RPCError

from core.backoff import DATABASE_DOWN

PROBLEM_JSON = "application/problem+json"

RETRY_AFTER_S = 5
"""What a 503 tells the client to wait before trying again."""

# A database outage (core.backoff.DATABASE_DOWN): the request may succeed later, a 503.

log = logging.getLogger("openlines.api")

TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    422: "Invalid input",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class ApiError(Exception):
    """Raised by handlers for any 4xx answer; becomes a problem-details body."""

    def __init__(
        self,
        status: int,
        detail: str,
        errors: Sequence[dict[str, str]] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers


def unavailable(detail: str) -> ApiError:
    """A 503 with ``Retry-After``: the database or Temporal did not answer in time."""
    return ApiError(503, detail, headers={"Retry-After": str(RETRY_AFTER_S)})


def missing(field: str, message: str) -> ApiError:
    """A 404 naming the body field whose reference names nothing (as an unknown id in the
    path is a 404): the request is well formed, what it points at is not there."""
    return ApiError(404, f"{field}: {message}", [{"field": field, "message": message}])


def conflict(field: str, message: str) -> ApiError:
    """A 409 naming the body field whose reference exists but cannot be used in its state."""
    return ApiError(409, f"{field}: {message}", [{"field": field, "message": message}])


def invalid(field: str, message: str) -> ApiError:
    """A 422 naming one field."""
    return ApiError(422, f"{field}: {message}", [{"field": field, "message": message}])


def field_path(loc: Iterable[int | str]) -> str:
    """``('queue', 'members', 0, 'id')`` -> ``queue.members[0].id``."""
    path = ""
    for part in loc:
        if part == "[key]":  # pydantic's marker for a bad mapping key; the path names the key
            continue
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def validation_error(errors: Iterable[Any], prefix: Sequence[int | str] = ()) -> ApiError:
    """Turn pydantic error dicts into one 422 listing every bad field."""
    items = []
    for error in errors:
        if error.get("type") == "json_invalid":  # loc holds a character position, not a field
            position = error["loc"][-1]
            reason = error.get("ctx", {}).get("error", "malformed")
            items.append(
                {"field": "body", "message": f"not valid JSON: {reason} at character {position}"}
            )
            continue
        loc = list(prefix) + list(error["loc"])
        if loc[:1] == ["body"]:
            loc = loc[1:]
        items.append({"field": field_path(loc) or "body", "message": error["msg"]})
    detail = "; ".join(f"{item['field']}: {item['message']}" for item in items)
    return ApiError(422, detail or "invalid input", items)


def problem_response(
    status: int,
    detail: str,
    errors: Sequence[dict[str, str]] = (),
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """The problem-details answer; ``extensions`` are members beside the standard ones."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **(extensions or {}),
    }
    if errors:
        body["errors"] = list(errors)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


class BodyTooLarge(Exception):
    """A request body streamed in past ``limit`` bytes (``api.body_limit``)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes")
        self.limit = limit


def body_too_large(limit: int) -> JSONResponse:
    """The 413 answer; the connection closes after it, the rest of the body unread."""
    detail = f"the request body is larger than {limit} bytes"
    return problem_response(413, detail, headers={"Connection": "close"})


def unavailable_response(detail: str) -> JSONResponse:
    """The 503 answer of ``unavailable``."""
    error = unavailable(detail)
    return problem_response(error.status, error.detail, headers=error.headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at this path (Starlette's own 405 names only the first
    route whose path matched)."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        if route.path_format and compile_path(route.path_format)[0].fullmatch(request.url.path):
            methods |= route.methods or set()
    return sorted(methods)


def install(app: FastAPI) -> None:
    """Route every error through problem details."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return problem_response(exc.status, exc.detail, exc.errors, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        found = exc.errors()
        if found and all(e["loc"][0] == "path" for e in found):
            # A path segment that is not an id names nothing: 404, as an unknown id is.
            name = str(found[0]["loc"][1])
            value = request.path_params.get(name)
            return problem_response(404, f"{name.removesuffix('_id')} {value} does not exist")
        error = validation_error(found)
        return problem_response(422, error.detail, error.errors)

    @app.exception_handler(ValidationError)
    async def _model_invalid(_: Request, exc: ValidationError) -> JSONResponse:
        error = validation_error(exc.errors())
        return problem_response(422, error.detail, error.errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 405:
            allow = ", ".join(allowed_methods(request))
            return problem_response(405, "method not allowed", headers={"Allow": allow})
        if isinstance(exc.__cause__, BodyTooLarge):  # FastAPI wraps a failed body read
            return body_too_large(exc.__cause__.limit)
        if exc.status_code == 400 and exc.__cause__ is not None:
            # FastAPI's answer to a body it could not decode (not UTF-8, nested too deeply):
            # invalid input like any other malformed JSON.
            message = "not valid JSON: could not be decoded"
            return problem_response(
                422, f"body: {message}", [{"field": "body", "message": message}]
            )
        return problem_response(exc.status_code, str(exc.detail), headers=exc.headers)

    async def _database_down(_: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", exc)
        return unavailable_response("the database is unavailable; try again later")

    async def _temporal_down(_: Request, exc: Exception) -> JSONResponse:
        log.warning("Temporal unavailable: %s", exc)
        return unavailable_response("Temporal is unavailable; try again later")

    for database_error in DATABASE_DOWN:
        app.add_exception_handler(database_error, _database_down)
    for temporal_error in (RPCError, RPCTimeoutOrCancelledError):
        app.add_exception_handler(temporal_error, _temporal_down)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Starlette logs and re-raises it after this answer; the client still gets problem
        # details, not a plain-text body.
        return problem_response(500, "internal server error")
