"""Request dependencies: the database session, the caller's identity, the Temporal client."""

import asyncio
import hmac
import logging
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request
from pydantic import Field, GetCoreSchemaHandler, GetJsonSchemaHandler, StringConstraints
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    QueryWorkflowInput,
    StartWorkflowInput,
    StartWorkflowUpdateInput,
    WorkflowHandle,
    WorkflowUpdateHandle,
)

from api import rate_limit
from api.errors import ApiError, invalid, unavailable
from core.api_keys import Role, digest
from core.config import Settings
from core.models import MAX_ID as MAX_ID  # the routes take it from here
from core.models import ApiKey, Base, Bot, Operator
from core.temporal import connect

Row = TypeVar("Row", bound=Base)

log = logging.getLogger("openlines.api")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as session:
        yield session


Session = Annotated[AsyncSession, Depends(get_session)]


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session that only reads: on SQLite it neither waits for nor blocks writers."""
    async with request.app.state.read_sessions() as session:
        yield session


ReadSession = Annotated[AsyncSession, Depends(get_read_session)]


# --- Input shapes shared by the routes ----------------------------------------------------

DbId = Annotated[int, Field(ge=1, le=MAX_ID)]
"""An id given in a request body."""


async def get_or_404(
    session: AsyncSession, model: type[Row], row_id: int, what: str, lock: bool = False
) -> Row:
    """The row with this id (``lock``: locked for update), or a 404 naming it. Deleted rows
    (``deleted_at`` set) are gone.

    Ids outside the column's range cannot exist; asking the database would be an error.
    """
    row = await get_or_none(session, model, row_id, lock)
    if row is None or getattr(row, "deleted_at", None) is not None:
        raise ApiError(404, f"{what} {row_id} does not exist")
    return row


async def get_or_none(
    session: AsyncSession, model: type[Row], row_id: int, lock: bool = False
) -> Row | None:
    """The row with this id, or None; an id outside the column's range is not asked for
    (PostgreSQL would refuse the query)."""
    in_range = 1 <= row_id <= MAX_ID
    return await session.get(model, row_id, with_for_update=lock) if in_range else None


Cursor = Annotated[
    str | None,
    Query(
        pattern=r"^[0-9]{1,10}$",
        description="The next_cursor of the previous page; left out for the first page",
    ),
]


def cursor_id(cursor: str | None) -> int | None:
    """The row id in a list's ``cursor`` (a previous page's ``next_cursor``); a larger
    number than any id is read as the largest id (the database's integer column could not
    even compare with it)."""
    if cursor is None:
        return None
    if not re.fullmatch(r"[0-9]{1,10}", cursor):  # the query pattern checked it already
        raise invalid("cursor", "not a cursor this API returned")
    return min(int(cursor), MAX_ID)


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("may not contain NUL characters")
    return value


class _NoNul:
    """PostgreSQL text columns cannot hold NUL: refuse it as invalid input instead of
    failing, and say so in the JSON schema (a pattern, unless the type has its own)."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(_no_nul, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        result = handler(schema)
        result.setdefault("pattern", r"^[^\x00]*$")
        return result


NoNul = _NoNul()

# What Python's str.strip() takes away, spelled out: regex engines disagree on what \s is.
WHITESPACE = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
Name = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=255,
        pattern=rf"^[^\x00]*[^{WHITESPACE}\x00][^\x00]*$",
    ),
]
"""A name or title: trimmed, not blank, at most 255 characters, no NUL."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a role, bound to an operator or a bot for those roles."""

    role: Role
    key_id: int | None = None
    operator_id: int | None = None
    bot_id: int | None = None


_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def given_bearer(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if there is one."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def bearer_token(request: Request, what: str = "key") -> str:
    """The token of an ``Authorization: Bearer <token>`` header; 401 without one."""
    token = given_bearer(request)
    if token is None:
        raise ApiError(
            401, f"an 'Authorization: Bearer <{what}>' header is required", headers=_UNAUTHORIZED
        )
    return token


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison; bytes, because compare_digest refuses non-ASCII str."""
    return hmac.compare_digest(given.encode(), expected.encode())


async def authenticate(request: Request, session: ReadSession) -> Principal:
    """Resolve the bearer key; 401 when it is missing, malformed, unknown or revoked."""
    key = bearer_token(request)
    bootstrap = get_settings(request).bootstrap_admin_key
    if bootstrap is not None and same_secret(key, bootstrap.get_secret_value()):
        rate_limit.check(rate_limit.limits(request).per_key, "bootstrap", "API key")
        return Principal(role="admin")
    found = (
        await session.execute(
            select(ApiKey, Operator.fired, Bot.deleted_at)
            .outerjoin(Operator, Operator.id == ApiKey.operator_id)
            .outerjoin(Bot, Bot.id == ApiKey.bot_id)
            .where(ApiKey.key_hash == digest(key), ApiKey.revoked_at.is_(None))
        )
    ).first()
    # A key dies with its owner: a fired operator's, a deleted bot's (checked here too, so a
    # key outlives no owner whatever revoked it or not).
    if found is None or found.fired or found.deleted_at is not None:
        raise ApiError(401, "unknown or revoked API key", headers=_UNAUTHORIZED)
    row: ApiKey = found[0]
    rate_limit.check(rate_limit.limits(request).per_key, f"key:{row.id}", "API key")
    return Principal(role=row.role, key_id=row.id, operator_id=row.operator_id, bot_id=row.bot_id)  # type: ignore[arg-type]


def require(*roles: Role) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency that admits only the given roles (403 for the others)."""

    async def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if principal.role not in roles:
            raise ApiError(403, f"the {principal.role} role may not do this")
        return principal

    return check


Admin = Annotated[Principal, Depends(require("admin"))]
Reader = Annotated[Principal, Depends(require("admin", "supervisor", "operator"))]
DialogReader = Annotated[Principal, Depends(require("admin", "supervisor", "operator", "bot"))]
"""Everyone who may see some dialogs: bot keys see only their bot's (``api.routes.dialogs``)."""


AppSettings = Annotated[Settings, Depends(get_settings)]


class CallDeadline(Interceptor):
    """Gives the API's Temporal calls (start, query, update) a deadline unless they set their
    own: a query with no worker running would otherwise wait for the server's limit (30 s)."""

    def __init__(self, timeout: timedelta) -> None:
        self.timeout = timeout

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _DeadlineOutbound(next, self.timeout)


class _DeadlineOutbound(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, timeout: timedelta) -> None:
        super().__init__(next)
        self.timeout = timeout

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        input.rpc_timeout = input.rpc_timeout or self.timeout
        return await super().start_workflow(input)

    async def query_workflow(self, input: QueryWorkflowInput) -> Any:
        input.rpc_timeout = input.rpc_timeout or self.timeout
        return await super().query_workflow(input)

    async def start_workflow_update(
        self, input: StartWorkflowUpdateInput
    ) -> WorkflowUpdateHandle[Any]:
        input.rpc_timeout = input.rpc_timeout or self.timeout
        return await super().start_workflow_update(input)


async def connect_with_deadlines(settings: Settings) -> Client:
    """The API's Temporal client: connected within the call deadline, every call bounded."""
    timeout = settings.temporal_call_timeout
    try:
        connected = await asyncio.wait_for(connect(settings), timeout)
    except (TimeoutError, RuntimeError) as error:  # RuntimeError: "Failed client connect"
        log.warning("cannot connect to Temporal: %r", error)
        raise unavailable("Temporal is unavailable; try again later") from None
    config = connected.config()
    config["interceptors"] = [*config["interceptors"], CallDeadline(timedelta(seconds=timeout))]
    return Client(**config)


async def get_temporal(request: Request) -> Client:
    """The app's Temporal client, connected on first use (a failed connection is not kept:
    the next request tries again)."""
    if request.app.state.temporal is None:
        request.app.state.temporal = await connect_with_deadlines(request.app.state.settings)
    client: Client = request.app.state.temporal
    return client


Temporal = Annotated[Client, Depends(get_temporal)]
