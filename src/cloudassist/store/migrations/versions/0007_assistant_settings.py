"""assistant_settings: each account's Cloud Assistant settings (one JSON document); plugin_statuses: the plug-ins
each instance's agent reports

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "assistant_settings",
        sa.Column("account_id", _ID, nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.account_id"], name=op.f("fk_assistant_settings_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_assistant_settings")),
    )
    op.create_table(
        "plugin_statuses",
        sa.Column("instance_id", sa.String(length=64), nullable=False),
        sa.Column("plugin_name", sa.String(length=255), nullable=False),
        sa.Column("plugin_version", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("first_heartbeat_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_heartbeat_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["managed_instances.instance_id"],
            name=op.f("fk_plugin_statuses_instance_id_managed_instances"),
        ),
        sa.PrimaryKeyConstraint("instance_id", "plugin_name", name=op.f("pk_plugin_statuses")),
    )


def downgrade() -> None:
    op.drop_table("plugin_statuses")
    op.drop_table("assistant_settings")
