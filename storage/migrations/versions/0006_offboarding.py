"""members can lose access (removed, or suspended on leaving); invites count their uses; wrong codes are counted

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('removed_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('removed_how', sa.String(length=16), nullable=True))
    with op.batch_alter_table('invites', schema=None) as batch_op:
        batch_op.add_column(sa.Column('uses', sa.Integer(), server_default='0', nullable=False))
    op.create_table(
        'code_guards',
        sa.Column('key', sa.String(length=96), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('window_started_at', sa.DateTime(), nullable=False),
        sa.Column('locked_until', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_code_guards')),
    )


def downgrade() -> None:
    op.drop_table('code_guards')
    with op.batch_alter_table('invites', schema=None) as batch_op:
        batch_op.drop_column('uses')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('removed_how')
        batch_op.drop_column('removed_at')
