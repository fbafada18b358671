"""sky index: exposures.healpix and the optional sources table

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

Adds the NESTED HEALPix pixel of each exposure centre (filled for existing rows) and the sources table
used by cone searches.  On SQLite the column is added in batch mode (table copy).
"""
from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('exposures', schema=None) as batch_op:
        batch_op.add_column(sa.Column('healpix', sa.BigInteger(), nullable=True))
        batch_op.create_index(batch_op.f('ix_exposures_healpix'), ['healpix'], unique=False)
    _fill_exposure_healpix()
    op.create_table('sources',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('catalog_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=True, comment='SExtractor NUMBER'),
    sa.Column('ra', sa.Double(), nullable=False, comment='ALPHA_J2000, degrees'),
    sa.Column('dec', sa.Double(), nullable=False, comment='DELTA_J2000, degrees'),
    sa.Column('healpix', sa.BigInteger(), nullable=False),
    sa.Column('mag', sa.Double(), nullable=True),
    sa.Column('magerr', sa.Double(), nullable=True),
    sa.Column('flags', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['catalog_id'], ['catalogs.id'], name=op.f('fk_sources_catalog_id_catalogs'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sources'))
    )
    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sources_catalog_id'), ['catalog_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sources_healpix'), ['healpix'], unique=False)


def _fill_exposure_healpix():
    from terapix_fw.db.ops import _healpix
    conn = op.get_bind()
    exposures = sa.table('exposures', sa.column('id'), sa.column('ra'), sa.column('dec'), sa.column('healpix'))
    rows = conn.execute(sa.select(exposures.c.id, exposures.c.ra, exposures.c.dec)
                        .where(exposures.c.ra.is_not(None), exposures.c.dec.is_not(None))).all()
    if rows:
        pix = _healpix([r.ra for r in rows], [r.dec for r in rows])
        for row, p in zip(rows, pix):
            conn.execute(sa.update(exposures).where(exposures.c.id == row.id).values(healpix=int(p)))


def downgrade():
    op.drop_table('sources')  # its indexes go with it (MySQL refuses to drop an FK's index first)
    with op.batch_alter_table('exposures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exposures_healpix'))
        batch_op.drop_column('healpix')
