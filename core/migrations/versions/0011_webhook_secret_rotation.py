"""webhook subscriptions: a rotated secret's grace period

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 05:20:00

For a day after ``POST /v1/webhooks/{id}/rotate-secret`` deliveries are signed with both the
new and the previous secret, so a subscriber can switch over without missing events.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS: list[sa.Column[Any]] = [
    sa.Column("previous_secret", sa.String(length=128), nullable=True),
    sa.Column("previous_secret_until", sa.DateTime(timezone=True), nullable=True),
]


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("webhooks", column)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for column in COLUMNS:
        if sqlite:
            op.execute(f"ALTER TABLE webhooks DROP COLUMN {column.name}")
        else:
            op.drop_column("webhooks", column.name)
