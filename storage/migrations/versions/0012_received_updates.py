"""received_updates: a poller's crash-safe copy of the updates it confirmed at once (storage.inbox)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'received_updates',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('source', sa.String(length=64), nullable=False),
        sa.Column('key', sa.String(length=128), nullable=False),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.Column('received_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_received_updates')),
        sa.UniqueConstraint('key', name=op.f('uq_received_updates_key')),
    )
    op.create_index(op.f('ix_received_updates_source'), 'received_updates', ['source'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_received_updates_source'), table_name='received_updates')
    op.drop_table('received_updates')
