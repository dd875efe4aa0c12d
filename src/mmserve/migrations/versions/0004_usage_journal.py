"""The usage write-ahead journal's commit marks: ``usage_journal_done`` (see ``mmserve.control.usage_journal``).

A journal segment's name is inserted with its records, in one transaction, so that a segment
whose process died after the commit but before removing the file is not written twice.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("usage_journal_done", sa.Column("segment", sa.String(200), primary_key=True))


def downgrade() -> None:
    op.drop_table("usage_journal_done")
