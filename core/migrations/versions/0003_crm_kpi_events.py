"""crm, kpi, events, notifications, webhooks

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 17:04:14.217268
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("dialog_id", sa.Integer(), nullable=True),
        sa.Column("operator_ids", sa.JSON(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=True),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_dialog_id"), ["dialog_id"], unique=False)
        batch_op.create_index(
            "ix_events_undispatched",
            ["id"],
            unique=False,
            sqlite_where=sa.text("dispatched_at IS NULL"),
            postgresql_where=sa.text("dispatched_at IS NULL"),
        )

    op.create_table(
        "webhooks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("responsible_id", sa.Integer(), nullable=True),
        sa.Column("merged_into_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merged_into_id"],
            ["contacts.id"],
        ),
        sa.ForeignKeyConstraint(["responsible_id"], ["operators.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("webhook_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
        ),
        sa.ForeignKeyConstraint(["webhook_id"], ["webhooks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("webhook_id", "event_id", name="uq_webhook_deliveries_webhook_event"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "contact_identities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "value", name="uq_contact_identities_kind_value"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("contact_identities", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contact_identities_contact_id"), ["contact_id"], unique=False
        )

    op.create_table(
        "leads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("responsible_id", sa.Integer(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("dialog_id", sa.Integer(), nullable=True),
        sa.Column("external_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["dialog_id"],
            ["dialogs.id"],
        ),
        sa.ForeignKeyConstraint(["responsible_id"], ["operators.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dialog_id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.create_index("ix_leads_contact", ["contact_id"], unique=False)

    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("dialog_id", sa.Integer(), nullable=True),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["dialog_id"],
            ["dialogs.id"],
        ),
        sa.ForeignKeyConstraint(["recipient_id"], ["operators.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("recipient_id", "key", name="uq_notifications_recipient_key"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index("ix_notifications_recipient", ["recipient_id", "id"], unique=False)

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("ix_messages_operator", ["operator_id", "created_at"], unique=False)

    # Plain ALTER TABLE ... ADD COLUMN (foreign key inline): a batch operation would rebuild
    # these tables on SQLite without AUTOINCREMENT, and their ids must never be reused.
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in ("chats", "dialogs"):
        if sqlite:  # alembic cannot add a constraint there; the column can carry it
            op.execute(
                f"ALTER TABLE {table} ADD COLUMN contact_id INTEGER REFERENCES contacts (id)"
            )
        else:
            foreign_key = sa.ForeignKey("contacts.id", name=f"fk_{table}_contact_id")
            op.add_column(table, sa.Column("contact_id", sa.Integer(), foreign_key, nullable=True))
        op.create_index(f"ix_{table}_contact_id", table, ["contact_id"], unique=False)
    for flag in ("client_known", "lead_requested", "outside_queue"):
        op.add_column(
            "dialogs", sa.Column(flag, sa.Boolean(), nullable=False, server_default=sa.false())
        )
    for count in ("total_answer_s", "answers", "kpi_overdue"):
        op.add_column("dialogs", sa.Column(count, sa.Integer(), nullable=False, server_default="0"))
    for seconds in ("first_answer_s", "max_answer_s"):
        op.add_column("dialogs", sa.Column(seconds, sa.Integer(), nullable=True))


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_operator")

    with op.batch_alter_table("dialogs", schema=None) as batch_op:
        if not sqlite:  # on SQLite the rebuilt table simply lacks it
            batch_op.drop_constraint("fk_dialogs_contact_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_dialogs_contact_id"))
        batch_op.drop_column("kpi_overdue")
        batch_op.drop_column("max_answer_s")
        batch_op.drop_column("answers")
        batch_op.drop_column("total_answer_s")
        batch_op.drop_column("first_answer_s")
        batch_op.drop_column("outside_queue")
        batch_op.drop_column("lead_requested")
        batch_op.drop_column("client_known")
        batch_op.drop_column("contact_id")

    with op.batch_alter_table("chats", schema=None) as batch_op:
        if not sqlite:  # on SQLite the rebuilt table simply lacks it
            batch_op.drop_constraint("fk_chats_contact_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_chats_contact_id"))
        batch_op.drop_column("contact_id")

    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_recipient")

    op.drop_table("notifications")
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index("ix_leads_contact")

    op.drop_table("leads")
    with op.batch_alter_table("contact_identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_identities_contact_id"))

    op.drop_table("contact_identities")
    op.drop_table("webhook_deliveries")
    op.drop_table("contacts")
    op.drop_table("webhooks")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_events_undispatched",
            sqlite_where=sa.text("dispatched_at IS NULL"),
            postgresql_where=sa.text("dispatched_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_events_dialog_id"))

    op.drop_table("events")
