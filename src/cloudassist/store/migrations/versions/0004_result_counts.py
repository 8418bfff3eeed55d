"""result_counts: execution records per status, command and instance, kept on write (TotalCount without
counting the records); an (account_id, region_id, creation_time, seq) index on invocation_results for the
records the retention window hides by age

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from cloudassist.store.counts import recount

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "result_counts",
        sa.Column("account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("region_id", sa.String(length=64), nullable=False),
        sa.Column("dim", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.account_id"], name=op.f("fk_result_counts_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "region_id", "dim", "value", name=op.f("pk_result_counts")),
    )
    with op.batch_alter_table("invocation_results", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_invocation_results_account_id_region_id_creation_time_seq"),
            ["account_id", "region_id", "creation_time", "seq"],
            unique=False,
        )
    # the records already stored: the migration runs in one transaction, alone (store/migrate.py)
    recount(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table("invocation_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invocation_results_account_id_region_id_creation_time_seq"))
    op.drop_table("result_counts")
