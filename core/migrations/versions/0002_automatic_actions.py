"""automatic actions, ratings, agreements

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 14:35:08.896849
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

UNOFFERED = "waiting_since IS NOT NULL AND offered_at IS NULL AND operator_id IS NULL"

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agreements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "agreement_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agreement_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agreement_id"], ["agreements.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("agreement_id", "version"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "consents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agreement_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("channel_type", sa.String(length=16), nullable=False),
        sa.Column("dialog_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agreement_id"], ["agreements.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
        ),
        sa.ForeignKeyConstraint(
            ["chat_id"],
            ["chats.id"],
        ),
        sa.ForeignKeyConstraint(
            ["dialog_id"],
            ["dialogs.id"],
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.create_index("ix_consents_agreement", ["agreement_id", "id"], unique=False)
        batch_op.create_index(batch_op.f("ix_consents_chat_id"), ["chat_id"], unique=False)

    with op.batch_alter_table("chats", schema=None) as batch_op:
        batch_op.add_column(sa.Column("consent_agreement_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("consent_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("consent_after_message_id", sa.Integer(), nullable=True))

    with op.batch_alter_table("dialogs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("rating_requested_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("client_rating", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("client_rated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("supervisor_rating", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("supervisor_comment", sa.String(), nullable=True))
        batch_op.create_index(
            "ix_dialogs_line_unoffered",
            ["line_id", "waiting_since"],
            unique=False,
            sqlite_where=sa.text(UNOFFERED),
            postgresql_where=sa.text(UNOFFERED),
        )

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outbound_key", sa.String(length=128), nullable=True))
        batch_op.create_index(
            "uq_messages_outbound_key",
            ["outbound_key"],
            unique=True,
            sqlite_where=sa.text("outbound_key IS NOT NULL"),
            postgresql_where=sa.text("outbound_key IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("claimed_until")

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_messages_outbound_key",
            sqlite_where=sa.text("outbound_key IS NOT NULL"),
            postgresql_where=sa.text("outbound_key IS NOT NULL"),
        )
        batch_op.drop_column("outbound_key")

    with op.batch_alter_table("dialogs", schema=None) as batch_op:
        batch_op.drop_index("ix_dialogs_line_unoffered")
        batch_op.drop_column("supervisor_comment")
        batch_op.drop_column("supervisor_rating")
        batch_op.drop_column("client_rated_at")
        batch_op.drop_column("client_rating")
        batch_op.drop_column("rating_requested_at")

    with op.batch_alter_table("chats", schema=None) as batch_op:
        batch_op.drop_column("consent_after_message_id")
        batch_op.drop_column("consent_version")
        batch_op.drop_column("consent_agreement_id")

    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consents_chat_id"))
        batch_op.drop_index("ix_consents_agreement")

    op.drop_table("consents")
    op.drop_table("agreement_versions")
    op.drop_table("agreements")
