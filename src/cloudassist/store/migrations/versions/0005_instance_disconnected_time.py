"""managed_instances.disconnected_time: when the agent's websocket closed with no sign of life since; the
agent is offline from then until its next heart-beat

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("managed_instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disconnected_time", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("managed_instances", schema=None) as batch_op:
        batch_op.drop_column("disconnected_time")
