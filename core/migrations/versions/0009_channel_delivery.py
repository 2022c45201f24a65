"""channel delivery: each outbound message's delivery status; a rotated secret's grace period

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 02:30:00

Messages to the client carry ``delivery_status`` (``pending``, ``sent``, ``delivered``,
``read``, ``failed``) and the channel's last error; client messages carry none. A channel
keeps its previous secret for a day after a rotation, so senders can switch over.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS: dict[str, list[sa.Column[Any]]] = {
    "messages": [
        sa.Column("delivery_status", sa.String(length=16), nullable=True),
        sa.Column("delivery_error", sa.String(length=500), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    ],
    "channels": [
        sa.Column("previous_secret", sa.String(length=128), nullable=True),
        sa.Column("previous_secret_until", sa.DateTime(timezone=True), nullable=True),
    ],
}


def upgrade() -> None:
    # Plain ADD COLUMNs on both backends (see 0007).
    for table, columns in COLUMNS.items():
        for column in columns:
            op.add_column(table, column)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, columns in COLUMNS.items():
        for column in columns:
            if sqlite:
                op.execute(f"ALTER TABLE {table} DROP COLUMN {column.name}")
            else:
                op.drop_column(table, column.name)
