"""The OpenAPI schema, with the answers FastAPI leaves out: every error as problem details.

FastAPI documents each operation's success and a 422 in its own shape; openlines answers
every error as ``application/problem+json`` (``api.errors``). This adds, per operation, the
errors it can answer: 401 and 403 where an API key is needed (401 only where a channel proves
itself instead; 401 and 403 on a web chat widget's routes, for a visitor's token and a site's
identity hash), 404 where the path names something, 409 where it changes something, 413 and
422 where it takes a body or parameters, 429 (rate limits), 500 and 503 (database or Temporal
away); and the bearer key scheme, so clients and generators know how to call.
"""

import copy
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from api.deps import authenticate
from api.errors import TITLES

PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
# Routes a channel's side calls, proving itself with the channel secret or a signature.
CHANNEL_ROUTES = (
    "/v1/channels/{channel_id}/messages",
    "/v1/channels/{channel_id}/receipts",
    "/v1/channels/{channel_id}/telegram",
    "/v1/dialogs/{dialog_id}/rating",
)
# A web chat widget's routes: a visitor token (401), a site's identity hash (403).
WIDGET_ROUTES = "/v1/webchat/"
# Answered without a key and without the database.
PLAIN_ROUTES = ("/healthz", "/metrics")


def install(app: FastAPI) -> None:
    """Serve the completed schema (built once, on the first request for it)."""

    def schema() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    summary=app.summary,
                    routes=app.routes,
                ),
                app,
            )
        return app.openapi_schema

    app.openapi = schema  # type: ignore[method-assign]


def complete(schema: dict[str, Any], app: FastAPI) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM
    components["securitySchemes"] = {"ApiKey": {"type": "http", "scheme": "bearer"}}
    keyed = {
        route.path_format
        for route in iter_route_contexts(app.routes)
        if isinstance(route.original_route, APIRoute) and _needs_key(route.original_route)
    }
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if path in keyed:
                operation["security"] = [{"ApiKey": []}]
            responses = operation.setdefault("responses", {})
            for status in _errors(path, method, operation, path in keyed):
                described = responses.setdefault(str(status), {"description": TITLES[status]})
                described["content"] = {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                }
                if status in (429, 503):
                    described["headers"] = {
                        "Retry-After": {
                            "description": "Seconds to wait",
                            "schema": {"type": "integer"},
                        }
                    }
    _patch_variants(schema)
    components["schemas"].pop("HTTPValidationError", None)
    components["schemas"].pop("ValidationError", None)
    return schema


def _needs_key(route: APIRoute) -> bool:
    return _depends_on(route.dependant, authenticate)


def _depends_on(dependant: Any, call: Any) -> bool:
    return any(d.call is call or _depends_on(d, call) for d in dependant.dependencies)


def _errors(path: str, method: str, operation: dict[str, Any], keyed: bool) -> list[int]:
    if path in PLAIN_ROUTES:
        return [500]
    errors = [500, 503]
    if keyed:
        errors += [401, 403, 429]
    elif path in CHANNEL_ROUTES:
        errors += [401, 429]
    elif path.startswith(WIDGET_ROUTES):
        errors += [401, 403, 429]
    if "{" in path or "requestBody" in operation:  # a body may name what is not there
        errors.append(404)
    if method in ("post", "put", "patch", "delete"):
        errors.append(409)
    if "requestBody" in operation:
        errors.append(413)
    if "requestBody" in operation or operation.get("parameters"):
        errors.append(422)
    return sorted(errors)


PATCH = "Patch"
REF = "#/components/schemas/"


def _patch_variants(schema: dict[str, Any]) -> None:
    """Write each ``<Name>Patch`` schema that something refers to: ``<Name>`` with nothing
    required, and the same for the groups its properties name directly (a PATCH merges them
    field by field). Lists and maps are replaced whole, so their items stay as they are."""
    schemas = schema["components"]["schemas"]
    wanted = {
        ref.removeprefix(REF)
        for ref in _refs(schema)
        if ref.startswith(REF) and ref.endswith(PATCH)
    }
    for name in wanted:
        _patch_variant(schemas, name.removesuffix(PATCH))


def _patch_variant(schemas: dict[str, Any], base: str) -> str:
    name = base + PATCH
    if name in schemas:
        return name
    variant = copy.deepcopy(schemas[base])
    variant.pop("required", None)
    schemas[name] = variant
    for field in variant.get("properties", {}).values():
        for option in [field, *field.get("anyOf", [])]:
            ref = option.get("$ref", "")
            if ref.startswith(REF):
                option["$ref"] = REF + _patch_variant(schemas, ref.removeprefix(REF))
    return name


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)
