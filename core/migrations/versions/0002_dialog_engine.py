"""dialog engine: messages, outbox, offers

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 12:18:28.058568
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.Integer(), nullable=False),
        sa.Column("dialog_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=16), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=True),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["chat_id"],
            ["chats.id"],
        ),
        sa.ForeignKeyConstraint(
            ["dialog_id"],
            ["dialogs.id"],
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("ix_messages_dialog", ["dialog_id", "id"], unique=False)
        batch_op.create_index(
            "uq_messages_chat_external",
            ["chat_id", "external_id"],
            unique=True,
            sqlite_where=sa.text("external_id IS NOT NULL"),
            postgresql_where=sa.text("external_id IS NOT NULL"),
        )

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("dialog_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["dialog_id"],
            ["dialogs.id"],
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_undelivered",
            ["id"],
            unique=False,
            sqlite_where=sa.text("delivered_at IS NULL"),
            postgresql_where=sa.text("delivered_at IS NULL"),
        )

    with op.batch_alter_table("dialogs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("channel_type", sa.String(length=16), nullable=False, server_default="api")
        )
        batch_op.add_column(sa.Column("holder_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("offered_to", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("offered_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("waiting_since", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_offered_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("answered", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("pinned", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("run_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column(
                "updated_at",
                sa.DateTime(timezone=True),
                nullable=False,
                server_default=sa.func.current_timestamp(),
            )
        )
        batch_op.drop_index(batch_op.f("ix_dialogs_chat_id"))
        batch_op.create_index("ix_dialogs_chat_status", ["chat_id", "status"], unique=False)
        batch_op.create_index("ix_dialogs_line_holder", ["line_id", "holder_id"], unique=False)
        batch_op.create_index("ix_dialogs_line_waiting", ["line_id", "waiting_since"], unique=False)
        batch_op.create_foreign_key("fk_dialogs_holder_id", "operators", ["holder_id"], ["id"])

    with op.batch_alter_table("operators", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_offered_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("operators", schema=None) as batch_op:
        batch_op.drop_column("last_offered_at")

    with op.batch_alter_table("dialogs", schema=None) as batch_op:
        batch_op.drop_constraint("fk_dialogs_holder_id", type_="foreignkey")
        batch_op.drop_index("ix_dialogs_line_waiting")
        batch_op.drop_index("ix_dialogs_line_holder")
        batch_op.drop_index("ix_dialogs_chat_status")
        batch_op.create_index(batch_op.f("ix_dialogs_chat_id"), ["chat_id"], unique=False)
        batch_op.drop_column("updated_at")
        batch_op.drop_column("accepted_at")
        batch_op.drop_column("run_id")
        batch_op.drop_column("pinned")
        batch_op.drop_column("answered")
        batch_op.drop_column("last_offered_id")
        batch_op.drop_column("waiting_since")
        batch_op.drop_column("offered_at")
        batch_op.drop_column("offered_to")
        batch_op.drop_column("holder_id")
        batch_op.drop_column("channel_type")

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_undelivered",
            sqlite_where=sa.text("delivered_at IS NULL"),
            postgresql_where=sa.text("delivered_at IS NULL"),
        )

    op.drop_table("outbox")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_messages_chat_external",
            sqlite_where=sa.text("external_id IS NOT NULL"),
            postgresql_where=sa.text("external_id IS NOT NULL"),
        )
        batch_op.drop_index("ix_messages_dialog")

    op.drop_table("messages")
