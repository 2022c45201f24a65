"""messages by chat: a web chat visitor reads their chat's messages after an id

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 09:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_messages_chat", "messages", ["chat_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_messages_chat", table_name="messages")
