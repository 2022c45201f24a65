"""reply idempotency: ``messages.idempotency_key``, unique per dialog

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 22:00:00

An operator's or bot's reply may carry an ``Idempotency-Key`` header: a retry with the same
key in the same dialog finds the stored message instead of storing a second one.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYED = sa.text("idempotency_key IS NOT NULL")


def upgrade() -> None:
    # A plain ALTER TABLE ... ADD COLUMN on both backends (no batch: on SQLite that would
    # rebuild messages without AUTOINCREMENT, see 0003).
    op.add_column("messages", sa.Column("idempotency_key", sa.String(length=200), nullable=True))
    op.create_index(
        "uq_messages_dialog_idempotency_key",
        "messages",
        ["dialog_id", "idempotency_key"],
        unique=True,
        sqlite_where=KEYED,
        postgresql_where=KEYED,
    )


def downgrade() -> None:
    op.drop_index("uq_messages_dialog_idempotency_key", table_name="messages")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE messages DROP COLUMN idempotency_key")
    else:
        op.drop_column("messages", "idempotency_key")
