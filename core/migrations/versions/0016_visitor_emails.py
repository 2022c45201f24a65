"""visitor emails: when a web chat reply was emailed unread, when a transcript went out

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 09:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("emailed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "dialogs", sa.Column("transcript_sent_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("dialogs", "transcript_sent_at")
    op.drop_column("messages", "emailed_at")
