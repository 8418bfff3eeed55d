"""terminal_sessions and terminal_connections: Session Manager sessions, their connections and audit records

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "terminal_sessions",
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("account_id", _Id, nullable=False),
        sa.Column("region_id", sa.String(64), nullable=False),
        sa.Column("instance_ids", sa.Text(), nullable=False),
        sa.Column("port_number", sa.Integer(), nullable=True),
        sa.Column("target_server", sa.String(128), nullable=False),
        sa.Column("command_line", sa.String(512), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_name", sa.String(255), nullable=False),
        sa.Column("connection_type", sa.String(16), nullable=False),
        sa.Column("access_key_id", sa.String(64), nullable=False),
        sa.Column("client_ip", sa.String(64), nullable=False),
        sa.Column("creation_time", _Time, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("token_expires", _Time, nullable=False),
        sa.Column("token_used_time", _Time, nullable=True),
        sa.Column("ended_time", _Time, nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.account_id"], name="fk_terminal_sessions_account_id_accounts"
        ),
        sa.PrimaryKeyConstraint("session_id", name="pk_terminal_sessions"),
        sa.UniqueConstraint("token_hash", name="uq_terminal_sessions_token_hash"),
    )
    op.create_index(
        "ix_terminal_sessions_account_id_region_id_creation_time",
        "terminal_sessions",
        ["account_id", "region_id", "creation_time"],
    )
    op.create_table(
        "terminal_connections",
        sa.Column("channel_id", sa.String(32), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("account_id", _Id, nullable=False),
        sa.Column("instance_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("client_ip", sa.String(64), nullable=False),
        sa.Column("start_time", _Time, nullable=False),
        sa.Column("connected_time", _Time, nullable=True),
        sa.Column("seen_time", _Time, nullable=False),
        sa.Column("end_time", _Time, nullable=True),
        sa.Column("closed_reason", sa.String(64), nullable=False),
        sa.Column("failed_detail", sa.String(255), nullable=False),
        sa.Column("agent_status", sa.String(64), nullable=False),
        sa.Column("bytes_in", sa.BigInteger(), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=False),
        sa.Column("transcript", sa.LargeBinary(), nullable=True),
        sa.Column("transcript_truncated", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.account_id"], name="fk_terminal_connections_account_id_accounts"
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["terminal_sessions.session_id"],
            name="fk_terminal_connections_session_id_terminal_sessions",
        ),
        sa.PrimaryKeyConstraint("channel_id", name="pk_terminal_connections"),
    )
    op.create_index("ix_terminal_connections_session_id", "terminal_connections", ["session_id"])
    op.create_index("ix_terminal_connections_instance_id_status", "terminal_connections", ["instance_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_terminal_connections_instance_id_status", table_name="terminal_connections")
    op.drop_index("ix_terminal_connections_session_id", table_name="terminal_connections")
    op.drop_table("terminal_connections")
    op.drop_index("ix_terminal_sessions_account_id_region_id_creation_time", table_name="terminal_sessions")
    op.drop_table("terminal_sessions")
