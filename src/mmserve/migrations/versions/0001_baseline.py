"""Baseline: the schema as ``create_all`` made it before migrations (video jobs, API keys, usage records).

Databases made before migrations existed already have some or all of these tables: each is
created only when missing, so upgrading such a database adopts it instead of failing.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "video_jobs" not in existing:
        op.create_table(
            "video_jobs",
            sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("id", sa.String(64), nullable=False, unique=True),
            sa.Column("owner", sa.String(128), nullable=True),
            sa.Column("model", sa.String(128), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("progress", sa.Integer(), nullable=False),
            sa.Column("prompt", sa.Text(), nullable=False),
            sa.Column("width", sa.Integer(), nullable=False),
            sa.Column("height", sa.Integer(), nullable=False),
            sa.Column("seconds", sa.Float(), nullable=False),
            sa.Column("fps", sa.Integer(), nullable=False),
            sa.Column("num_frames", sa.Integer(), nullable=False),
            sa.Column("seed", sa.BigInteger(), nullable=False),
            sa.Column("params", sa.JSON(), nullable=False),
            sa.Column("reference_artifact", sa.String(64), nullable=True),
            sa.Column("video_artifact", sa.String(64), nullable=True),
            sa.Column("thumbnail_artifact", sa.String(64), nullable=True),
            sa.Column("spritesheet_artifact", sa.String(64), nullable=True),
            sa.Column("video_seconds", sa.Float(), nullable=True),
            sa.Column("timings", sa.JSON(), nullable=True),
            sa.Column("error_code", sa.String(64), nullable=True),
            sa.Column("error_message", sa.Text(), nullable=True),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.Column("worker_id", sa.String(160), nullable=True),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.Column("started_at", sa.Float(), nullable=True),
            sa.Column("heartbeat_at", sa.Float(), nullable=True),
            sa.Column("completed_at", sa.Float(), nullable=True),
            sa.Column("expires_at", sa.Float(), nullable=True),
        )
        op.create_index("ix_video_jobs_owner", "video_jobs", ["owner"])
        op.create_index("ix_video_jobs_expires_at", "video_jobs", ["expires_at"])
        op.create_index("ix_video_jobs_status_model_seq", "video_jobs", ["status", "model", "seq"])
    if "api_keys" not in existing:
        op.create_table(
            "api_keys",
            sa.Column("id", sa.String(32), primary_key=True),
            sa.Column("hash", sa.String(64), nullable=False),
            sa.Column("prefix", sa.String(16), nullable=False),
            sa.Column("name", sa.String(200), nullable=False),
            sa.Column("models", sa.JSON(), nullable=True),
            sa.Column("requests_per_min", sa.Integer(), nullable=True),
            sa.Column("tokens_per_min", sa.Integer(), nullable=True),
            sa.Column("admin", sa.Boolean(), nullable=False),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.Column("revoked_at", sa.Float(), nullable=True),
        )
        op.create_index("ix_api_keys_hash", "api_keys", ["hash"], unique=True)
    if "usage_records" not in existing:
        op.create_table(
            "usage_records",
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("created_at", sa.Float(), nullable=False),
            sa.Column("key_id", sa.String(32), nullable=True),
            sa.Column("model", sa.String(128), nullable=False),
            sa.Column("task", sa.String(32), nullable=False),
            sa.Column("endpoint", sa.String(64), nullable=False),
            sa.Column("input_tokens", sa.Integer(), nullable=False),
            sa.Column("output_tokens", sa.Integer(), nullable=False),
            sa.Column("image_tokens", sa.Integer(), nullable=False),
            sa.Column("images", sa.Integer(), nullable=False),
            sa.Column("audio_seconds", sa.Float(), nullable=False),
            sa.Column("video_seconds", sa.Float(), nullable=False),
            sa.Column("cost", sa.Float(), nullable=False),
            sa.Column("latency_s", sa.Float(), nullable=False),
        )
        op.create_index("ix_usage_records_created_at", "usage_records", ["created_at"])
        op.create_index("ix_usage_records_key_id", "usage_records", ["key_id"])
        op.create_index("ix_usage_records_model", "usage_records", ["model"])


def downgrade() -> None:
    op.drop_table("usage_records")
    op.drop_table("api_keys")
    op.drop_table("video_jobs")
