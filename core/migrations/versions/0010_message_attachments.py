"""message attachments: files a client sent, kept as references

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 05:30:00

A client message may carry attachments: a JSON list of ``{kind, ref, name, mime_type}``
where ``ref`` is what the channel names the file by (a Telegram ``file_id``, or whatever an
``api`` client gave). The files stay with the channel.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("attachments", sa.JSON(), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE messages DROP COLUMN attachments")
    else:
        op.drop_column("messages", "attachments")
