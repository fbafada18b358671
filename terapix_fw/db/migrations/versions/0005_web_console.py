"""web console: users' actions and problem reports

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

``terapix web serve`` records every action taken from the console (grades, problem reports,
submissions, transfers, downloads) in ``web_actions`` with the user's name, and the control team's
problem reports on exposures and stacks in ``problem_reports``.  New tables only.
"""
from alembic import op
import sqlalchemy as sa
import terapix_fw.db.types

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('web_actions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('time', terapix_fw.db.types.UTCDateTime(), nullable=False),
    sa.Column('user', sa.String(length=255), nullable=False, comment='console user name'),
    sa.Column('role', sa.String(length=16), nullable=False, comment='operator, control, pi'),
    sa.Column('action', sa.String(length=32), nullable=False,
              comment='grade, stack_grade, problem_report, submit, transfer, download, login...'),
    sa.Column('target', sa.String(length=255), nullable=True,
              comment='exposure, stack, run or file the action was about'),
    sa.Column('detail', sa.Text(), nullable=True, comment="JSON object: the action's parameters"),
    sa.Column('result', sa.String(length=16), nullable=True, comment='ok, refused, failed, started'),
    sa.Column('run_id', sa.String(length=64), nullable=True, comment='the run a submission started'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_web_actions')),
    comment='every action taken from the web console, with the user who took it'
    )
    with op.batch_alter_table('web_actions', schema=None) as batch_op:
        batch_op.create_index('ix_web_actions_time', ['time'], unique=False)
    op.create_table('problem_reports',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('target_kind', sa.String(length=16), nullable=False, comment='exposure or stack'),
    sa.Column('target', sa.String(length=255), nullable=False, comment='exposure file name or stack name'),
    sa.Column('author', sa.String(length=255), nullable=False),
    sa.Column('time', terapix_fw.db.types.UTCDateTime(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False, comment='open or closed'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_problem_reports'))
    )
    with op.batch_alter_table('problem_reports', schema=None) as batch_op:
        batch_op.create_index('ix_problem_reports_target', ['target_kind', 'target'], unique=False)


def downgrade():
    with op.batch_alter_table('problem_reports', schema=None) as batch_op:
        batch_op.drop_index('ix_problem_reports_target')
    op.drop_table('problem_reports')
    with op.batch_alter_table('web_actions', schema=None) as batch_op:
        batch_op.drop_index('ix_web_actions_time')
    op.drop_table('web_actions')
