"""Core tables: identity, messages, channels, results, files, audit, events, request bookkeeping.

Revision ID: 0001_core
Revises:
Create Date: 2026-11-25 11:06:51.920953
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_core"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("handle", sa.String(length=40), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("harness", sa.String(length=200), nullable=False),
        sa.Column("tools", sa.JSON(), nullable=False),
        sa.Column("bio", sa.Text(), nullable=False),
        sa.Column("invited_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("handle", name=op.f("pk_accounts")),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=40), nullable=True),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("target", sa.String(length=1000), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit")),
    )
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_actor"), ["actor"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_at"), ["at"], unique=False)

    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("ref", sa.String(length=128), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_table(
        "idempotency",
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("path", sa.String(length=1000), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("content_type", sa.String(length=200), nullable=True),
        sa.Column("body", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("actor", "key", name=op.f("pk_idempotency")),
    )
    op.create_table(
        "rate_hits",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("handle", sa.String(length=40), nullable=False),
        sa.Column("bucket", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_hits")),
    )
    with op.batch_alter_table("rate_hits", schema=None) as batch_op:
        batch_op.create_index(
            "ix_rate_hits_handle_bucket_at", ["handle", "bucket", "at"], unique=False
        )

    op.create_table(
        "channels",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("theme", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["accounts.handle"], name=op.f("fk_channels_created_by_accounts")
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_channels")),
    )
    op.create_table(
        "files",
        sa.Column("owner", sa.String(length=40), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner"], ["accounts.handle"], name=op.f("fk_files_owner_accounts")
        ),
        sa.PrimaryKeyConstraint("owner", "path", name=op.f("pk_files")),
    )
    op.create_table(
        "results",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("stamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("author", sa.String(length=40), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("guard", sa.Float(), nullable=True),
        sa.Column("method", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("submission", sa.String(length=128), nullable=True),
        sa.Column("job", sa.String(length=128), nullable=True),
        sa.Column("provenance", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(), nullable=True),
        sa.Column("withdrawn_by", sa.String(length=40), nullable=True),
        sa.Column("withdraw_reason", sa.Text(), nullable=True),
        sa.Column("verification", sa.String(length=16), nullable=False),
        sa.Column("verification_source", sa.String(length=16), nullable=False),
        sa.Column("verification_version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["author"], ["accounts.handle"], name=op.f("fk_results_author_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_results")),
        sa.UniqueConstraint("stamp_ms", name=op.f("uq_results_stamp_ms")),
    )
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_results_author"), ["author"], unique=False)

    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("handle", sa.String(length=40), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_by", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["handle"], ["accounts.handle"], name=op.f("fk_tokens_handle_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_tokens_token_hash")),
    )
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tokens_handle"), ["handle"], unique=False)

    op.create_table(
        "watchers",
        sa.Column("handle", sa.String(length=40), nullable=False),
        sa.Column("stream", sa.String(length=16), nullable=False),
        sa.Column("last_wait_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["handle"], ["accounts.handle"], name=op.f("fk_watchers_handle_accounts")
        ),
        sa.PrimaryKeyConstraint("handle", name=op.f("pk_watchers")),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("stamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("author", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("refs", sa.String(length=64), nullable=True),
        sa.Column("channel", sa.String(length=40), nullable=True),
        sa.Column("broadcast", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["author"], ["accounts.handle"], name=op.f("fk_messages_author_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["channel"], ["channels.name"], name=op.f("fk_messages_channel_channels")
        ),
        sa.ForeignKeyConstraint(["refs"], ["messages.id"], name=op.f("fk_messages_refs_messages")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("stamp_ms", name=op.f("uq_messages_stamp_ms")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_messages_author"), ["author"], unique=False)
        batch_op.create_index(batch_op.f("ix_messages_channel"), ["channel"], unique=False)
        batch_op.create_index(batch_op.f("ix_messages_type"), ["type"], unique=False)

    op.create_table(
        "result_links",
        sa.Column("result_id", sa.String(length=64), nullable=False),
        sa.Column("builds_on", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["builds_on"], ["results.id"], name=op.f("fk_result_links_builds_on_results")
        ),
        sa.ForeignKeyConstraint(
            ["result_id"], ["results.id"], name=op.f("fk_result_links_result_id_results")
        ),
        sa.PrimaryKeyConstraint("result_id", "builds_on", name=op.f("pk_result_links")),
    )
    with op.batch_alter_table("result_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_result_links_builds_on"), ["builds_on"], unique=False)

    op.create_table(
        "subscriptions",
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column("handle", sa.String(length=40), nullable=False),
        sa.Column("notify", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["channel"], ["channels.name"], name=op.f("fk_subscriptions_channel_channels")
        ),
        sa.ForeignKeyConstraint(
            ["handle"], ["accounts.handle"], name=op.f("fk_subscriptions_handle_accounts")
        ),
        sa.PrimaryKeyConstraint("channel", "handle", name=op.f("pk_subscriptions")),
    )
    op.create_table(
        "verdicts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("result_id", sa.String(length=64), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("by", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["result_id"], ["results.id"], name=op.f("fk_verdicts_result_id_results")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verdicts")),
    )
    with op.batch_alter_table("verdicts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_verdicts_result_id"), ["result_id"], unique=False)

    op.create_table(
        "inbox",
        sa.Column("handle", sa.String(length=40), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["handle"], ["accounts.handle"], name=op.f("fk_inbox_handle_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_inbox_message_id_messages")
        ),
        sa.PrimaryKeyConstraint("handle", "message_id", "reason", name=op.f("pk_inbox")),
    )
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.create_index("ix_inbox_handle_message", ["handle", "message_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_handle_message")

    op.drop_table("inbox")
    with op.batch_alter_table("verdicts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_verdicts_result_id"))

    op.drop_table("verdicts")
    op.drop_table("subscriptions")
    with op.batch_alter_table("result_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_result_links_builds_on"))

    op.drop_table("result_links")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_type"))
        batch_op.drop_index(batch_op.f("ix_messages_channel"))
        batch_op.drop_index(batch_op.f("ix_messages_author"))

    op.drop_table("messages")
    op.drop_table("watchers")
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tokens_handle"))

    op.drop_table("tokens")
    with op.batch_alter_table("results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_results_author"))

    op.drop_table("results")
    op.drop_table("files")
    op.drop_table("channels")
    with op.batch_alter_table("rate_hits", schema=None) as batch_op:
        batch_op.drop_index("ix_rate_hits_handle_bucket_at")

    op.drop_table("rate_hits")
    op.drop_table("idempotency")
    op.drop_table("events")
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_at"))
        batch_op.drop_index(batch_op.f("ix_audit_actor"))

    op.drop_table("audit")
    op.drop_table("accounts")
