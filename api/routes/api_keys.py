"""API keys: issue (the key is shown once), list, revoke. Admins only."""

from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select

from api import schema_rules
from api.deps import Admin, DbId, Session, get_or_404
from api.errors import invalid, missing
from core.api_keys import Role, issue_key
from core.bots import live_bot
from core.models import ApiKey, Operator

router = APIRouter(prefix="/v1/api-keys", tags=["api-keys"])


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "allOf": [
                schema_rules.when("role", "operator", "operator_id"),
                schema_rules.when("role", "bot", "bot_id"),
                {
                    "if": {"properties": {"role": {"enum": ["admin", "bot"]}}},
                    "then": {"properties": {"operator_id": {"type": "null"}}},
                },
                {
                    "if": {"properties": {"role": {"not": {"const": "bot"}}}},
                    "then": {"properties": {"bot_id": {"type": "null"}}},
                },
            ]
        },
    )
    role: Role
    operator_id: DbId | None = None
    bot_id: DbId | None = None

    @model_validator(mode="after")
    def _binding_matches_role(self) -> "ApiKeyCreate":
        if self.role == "operator" and self.operator_id is None:
            raise invalid("operator_id", "required for the operator role")
        if self.role == "bot" and self.bot_id is None:
            raise invalid("bot_id", "required for the bot role")
        # A supervisor is a person with an operator record too: bound, its key sees that
        # operator's notifications (KPI alerts).
        if self.role not in ("operator", "supervisor") and self.operator_id is not None:
            raise invalid(
                "operator_id", "only operator and supervisor keys are bound to an operator"
            )
        if self.role != "bot" and self.bot_id is not None:
            raise invalid("bot_id", "only a bot key is bound to a bot")
        return self


class ApiKeyOut(BaseModel):
    id: int
    role: str
    prefix: str
    operator_id: int | None
    bot_id: int | None
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The bearer key; shown only in this answer")


def _out(row: ApiKey) -> dict[str, object]:
    return {
        "id": row.id,
        "role": row.role,
        "prefix": row.prefix,
        "operator_id": row.operator_id,
        "bot_id": row.bot_id,
        "created_at": row.created_at,
        "revoked_at": row.revoked_at,
    }


@router.post("", status_code=201)
async def create_api_key(body: ApiKeyCreate, session: Session, _: Admin) -> ApiKeyCreated:
    if body.operator_id is not None and await session.get(Operator, body.operator_id) is None:
        raise missing("operator_id", f"operator {body.operator_id} does not exist")
    if body.bot_id is not None and not await live_bot(session, body.bot_id):
        raise missing("bot_id", f"bot {body.bot_id} does not exist")
    row, plain = await issue_key(session, body.role, body.operator_id, body.bot_id)
    await session.commit()
    return ApiKeyCreated(**_out(row), key=plain)


@router.get("")
async def list_api_keys(session: Session, _: Admin) -> list[ApiKeyOut]:
    rows = await session.scalars(select(ApiKey).order_by(ApiKey.id))
    return [ApiKeyOut(**_out(row)) for row in rows]


@router.delete("/{key_id}", status_code=204)
async def revoke_api_key(key_id: int, session: Session, _: Admin) -> None:
    row = await get_or_404(session, ApiKey, key_id, "API key")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        await session.commit()
