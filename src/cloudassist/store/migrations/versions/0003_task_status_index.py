"""an index of each task's record statuses: a task's roll-up is read from it, not from its records

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("invocation_results", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_invocation_results_invoke_id_status"), ["invoke_id", "status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("invocation_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invocation_results_invoke_id_status"))
