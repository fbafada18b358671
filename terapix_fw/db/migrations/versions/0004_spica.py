"""spica: selections, selection results, spica jobs and stack grades

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

Release planning (terapix_fw.spica): every selection with the first criterion each rejected exposure
failed, the jobs (one per stack, field or exposure) with their status and current step, and the history
of the control team's stack grades with problem reports.  New tables only: nothing existing changes.
"""
from alembic import op
import sqlalchemy as sa
import terapix_fw.db.types

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('selections',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False, comment='criteria name (e.g. T0001)'),
    sa.Column('criteria_file', sa.String(length=2048), nullable=True),
    sa.Column('criteria', sa.Text(), nullable=True, comment='JSON: the criteria as applied, in their order'),
    sa.Column('time', terapix_fw.db.types.UTCDateTime(), nullable=True),
    sa.Column('nselected', sa.Integer(), nullable=True),
    sa.Column('nrejected', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_selections'))
    )
    op.create_table('selection_results',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('selection_id', sa.Integer(), nullable=False),
    sa.Column('exposure_id', sa.Integer(), nullable=False),
    sa.Column('selected', sa.Boolean(), nullable=False),
    sa.Column('criterion', sa.String(length=64), nullable=True,
              comment='first criterion the exposure failed; NULL if selected'),
    sa.Column('detail', sa.Text(), nullable=True, comment='the value and the limit it failed'),
    sa.ForeignKeyConstraint(['exposure_id'], ['exposures.id'],
                            name=op.f('fk_selection_results_exposure_id_exposures'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['selection_id'], ['selections.id'],
                            name=op.f('fk_selection_results_selection_id_selections'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_selection_results')),
    sa.UniqueConstraint('selection_id', 'exposure_id', name=op.f('uq_selection_results_selection_id'))
    )
    with op.batch_alter_table('selection_results', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_selection_results_selection_id'), ['selection_id'], unique=False)
    op.create_table('spica_jobs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False,
              comment='stack name, or exposure stem in image-by-image mode'),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False, comment='release or image'),
    sa.Column('kind', sa.String(length=16), nullable=False, comment='stack, field (chi2), image'),
    sa.Column('stack_id', sa.Integer(), nullable=True),
    sa.Column('survey_component', sa.String(length=16), nullable=True),
    sa.Column('filter', sa.String(length=64), nullable=True),
    sa.Column('node', sa.String(length=255), nullable=True, comment='node that holds the inputs / ran the job'),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('astrometric_group', sa.String(length=255), nullable=True,
              comment='jobs of a group share one SCAMP solution'),
    sa.Column('workdir', sa.String(length=2048), nullable=True),
    sa.Column('instruction_file', sa.String(length=2048), nullable=True),
    sa.Column('command_file', sa.String(length=2048), nullable=True),
    sa.Column('n_astrometric', sa.Integer(), nullable=True),
    sa.Column('n_stack', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False, comment='pending, running, done, failed'),
    sa.Column('current_step', sa.String(length=255), nullable=True),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('start', terapix_fw.db.types.UTCDateTime(), nullable=True),
    sa.Column('end', terapix_fw.db.types.UTCDateTime(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('superseded_by', sa.Integer(), nullable=True,
              comment="id of the later stacks row that replaces this job's stack"),
    sa.ForeignKeyConstraint(['stack_id'], ['stacks.id'], name=op.f('fk_spica_jobs_stack_id_stacks'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_spica_jobs')),
    sa.UniqueConstraint('name', 'version', 'mode', name=op.f('uq_spica_jobs_name'))
    )
    op.create_table('stack_grades',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('stack_id', sa.Integer(), nullable=False),
    sa.Column('grade', sa.String(length=1), nullable=False),
    sa.Column('author', sa.String(length=255), nullable=False),
    sa.Column('time', terapix_fw.db.types.UTCDateTime(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True, comment='the problem report of a C/D stack'),
    sa.CheckConstraint("grade IN ('A','B','C','D')", name=op.f('ck_stack_grades_grade')),
    sa.ForeignKeyConstraint(['stack_id'], ['stacks.id'], name=op.f('fk_stack_grades_stack_id_stacks'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stack_grades'))
    )
    with op.batch_alter_table('stack_grades', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stack_grades_stack_id'), ['stack_id'], unique=False)


def downgrade():
    op.drop_table('stack_grades')
    op.drop_table('spica_jobs')
    op.drop_table('selection_results')
    op.drop_table('selections')
