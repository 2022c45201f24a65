"""chat-bots: the ``bots`` table and the bot a dialog is with

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 22:20:00

Before this, ``bot.bot_id`` and a bot key's ``bot_id`` named no row: lines that enabled a bot
have it switched off and bot keys are revoked, so neither attaches to whichever bot later
gets that id.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    # Plain ALTER TABLE ... ADD COLUMN (see 0003): a batch operation would rebuild dialogs on
    # SQLite without AUTOINCREMENT.
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE dialogs ADD COLUMN bot_id INTEGER REFERENCES bots (id)")
    else:
        foreign_key = sa.ForeignKey("bots.id", name="fk_dialogs_bot_id")
        op.add_column("dialogs", sa.Column("bot_id", sa.Integer(), foreign_key, nullable=True))
    op.create_index("ix_dialogs_bot_id", "dialogs", ["bot_id"], unique=False)  # a bot's dialogs

    bind = op.get_bind()
    lines = sa.table("lines", sa.column("id", sa.Integer()), sa.column("settings", sa.JSON()))
    for line_id, settings in bind.execute(sa.select(lines.c.id, lines.c.settings)).all():
        bot = settings.get("bot") or {}
        if bot.get("enabled"):
            switched_off = {**settings, "bot": {**bot, "enabled": False}}
            bind.execute(lines.update().where(lines.c.id == line_id).values(settings=switched_off))
    keys = sa.table(
        "api_keys",
        sa.column("role", sa.String()),
        sa.column("revoked_at", sa.DateTime(timezone=True)),
    )
    bind.execute(
        keys.update()
        .where(keys.c.role == "bot", keys.c.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )


def downgrade() -> None:
    op.drop_index("ix_dialogs_bot_id", table_name="dialogs")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE dialogs DROP COLUMN bot_id")
    else:
        op.drop_column("dialogs", "bot_id")
    op.drop_table("bots")
