"""ingestion: exposure checksum, sky probe and QualityFITS-in metrics, CCD footprints, quarantine,
stack metrics

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

* ``exposures``: ``skyprobe`` (extinction, mag), ``checksum`` (SHA-256 as arrived, indexed: re-ingestion
  and duplicate detection), ``background``, ``nstars``, ``ellipticity`` (QualityFITS-in);
* ``extensions``: the four WCS corners of each CCD (``ra1``/``dec1`` ... ``ra4``/``dec4``);
* ``stacks.suggested_grade`` and ``stack_metrics``: QualityFITS-out of a stack (stacks are products,
  never exposures);
* ``quarantine``: files refused by ingestion, with the reason.
"""
from alembic import op
import sqlalchemy as sa

import terapix_fw.db.types

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_CORNERS = [(f"{axis}{k}", f"corner {k} {'RA' if axis == 'ra' else 'Dec'}, degrees")
            for k in (1, 2, 3, 4) for axis in ("ra", "dec")]


def upgrade():
    with op.batch_alter_table('exposures', schema=None) as batch_op:
        batch_op.add_column(sa.Column('skyprobe', sa.Double(), nullable=True,
                                      comment='sky-probe extinction at the time of the exposure, mag'))
        batch_op.add_column(sa.Column('checksum', sa.String(length=64), nullable=True,
                                      comment='SHA-256 of the file as it arrived'))
        batch_op.add_column(sa.Column('background', sa.Double(), nullable=True,
                                      comment='median sky background, ADU (QualityFITS-in)'))
        batch_op.add_column(sa.Column('nstars', sa.Integer(), nullable=True,
                                      comment='stars classified by QualityFITS-in, all CCDs'))
        batch_op.add_column(sa.Column('ellipticity', sa.Double(), nullable=True,
                                      comment='median PSF ellipticity 1 - B/A (QualityFITS-in)'))
        batch_op.create_index(batch_op.f('ix_exposures_checksum'), ['checksum'], unique=False)
    with op.batch_alter_table('extensions', schema=None) as batch_op:
        for name, comment in _CORNERS:
            batch_op.add_column(sa.Column(name, sa.Double(), nullable=True, comment=comment))
    with op.batch_alter_table('stacks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('suggested_grade', sa.String(length=1), nullable=True,
                                      comment='grade suggested by QualityFITS-out'))
    op.create_table('stack_metrics',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('stack_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('value', sa.Double(), nullable=True),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('time', terapix_fw.db.types.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['stack_id'], ['stacks.id'], name=op.f('fk_stack_metrics_stack_id_stacks'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stack_metrics')),
    sa.UniqueConstraint('stack_id', 'name', name=op.f('uq_stack_metrics_stack_id')),
    comment='QualityFITS-out metrics of a stack (stacks are products, never exposures)'
    )
    op.create_table('quarantine',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False, comment='file name as it arrived'),
    sa.Column('origin', sa.String(length=2048), nullable=True, comment='where the file arrived'),
    sa.Column('path', sa.String(length=2048), nullable=True, comment='where it lies in quarantine'),
    sa.Column('path_hash', sa.String(length=64), nullable=True),
    sa.Column('node', sa.String(length=255), nullable=True),
    sa.Column('checksum', sa.String(length=64), nullable=True, comment='SHA-256 of the file'),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('time', terapix_fw.db.types.UTCDateTime(), nullable=True),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quarantine')),
    comment='files refused by ingestion (integrity), kept aside with the reason'
    )
    with op.batch_alter_table('quarantine', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quarantine_filename'), ['filename'], unique=False)


def downgrade():
    op.drop_table('quarantine')
    op.drop_table('stack_metrics')
    with op.batch_alter_table('stacks', schema=None) as batch_op:
        batch_op.drop_column('suggested_grade')
    with op.batch_alter_table('extensions', schema=None) as batch_op:
        for name, _ in reversed(_CORNERS):
            batch_op.drop_column(name)
    with op.batch_alter_table('exposures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exposures_checksum'))
        for name in ('ellipticity', 'nstars', 'background', 'checksum', 'skyprobe'):
            batch_op.drop_column(name)
