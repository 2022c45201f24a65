"""API keys: random bearer tokens of which only a SHA-256 digest is stored."""

import hashlib
import secrets
from datetime import datetime
from typing import Literal

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import ApiKey

Role = Literal["admin", "supervisor", "operator", "bot"]
ROLES: tuple[Role, ...] = ("admin", "supervisor", "operator", "bot")


def digest(key: str) -> str:
    """A fast hash is enough: keys are 256 random bits, not guessable passwords."""
    return hashlib.sha256(key.encode()).hexdigest()


async def issue_key(
    session: AsyncSession, role: Role, operator_id: int | None = None, bot_id: int | None = None
) -> tuple[ApiKey, str]:
    """Store a new key and return it with its plain text, which is never stored."""
    plain = f"ol_{secrets.token_urlsafe(32)}"
    row = ApiKey(
        key_hash=digest(plain), prefix=plain[:10], role=role, operator_id=operator_id, bot_id=bot_id
    )
    session.add(row)
    await session.flush()
    return row, plain


async def revoke_keys_of(
    session: AsyncSession, now: datetime, operator_id: int | None = None, bot_id: int | None = None
) -> None:
    """Revoke every live key bound to this operator (fired) or bot (deleted): a key dies with
    its owner, and rehiring does not bring it back."""
    if operator_id is not None:
        owner = ApiKey.operator_id == operator_id
    else:
        owner = ApiKey.bot_id == bot_id
    await session.execute(
        update(ApiKey)
        .where(owner, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
