"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-21

Every RDBix table except the sky index (sources, exposures.healpix: revision 0002).
"""
from alembic import op
import sqlalchemy as sa
import terapix_fw.db.types


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('documents',
    sa.Column('doc_id', sa.String(length=64), nullable=False, comment='dbClient document id (idempotency key)'),
    sa.Column('node', sa.String(length=255), nullable=True),
    sa.Column('created', terapix_fw.db.types.UTCDateTime(), nullable=True),
    sa.Column('applied', terapix_fw.db.types.UTCDateTime(), nullable=True),
    sa.Column('n_instructions', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('doc_id', name=op.f('pk_documents'))
    )
    op.create_table('exposures',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False, comment='file name without directory'),
    sa.Column('object', sa.String(length=255), nullable=True),
    sa.Column('filter', sa.String(length=64), nullable=True),
    sa.Column('qrunid', sa.String(length=64), nullable=True, comment='QSO run id (QRUNID)'),
    sa.Column('runid', sa.String(length=64), nullable=True, comment='CFHT camera run id (RUNID)'),
    sa.Column('ra', sa.Double(), nullable=True, comment='centre right ascension, degrees (J2000)'),
    sa.Column('dec', sa.Double(), nullable=True, comment='centre declination, degrees (J2000)'),
    sa.Column('exptime', sa.Double(), nullable=True, comment='seconds (EXPTIME)'),
    sa.Column('airmass', sa.Double(), nullable=True),
    sa.Column('seeing', sa.Double(), nullable=True, comment='arcsec FWHM'),
    sa.Column('mjd_obs', sa.Double(), nullable=True),
    sa.Column('date_obs', terapix_fw.db.types.UTCDateTime(), nullable=True),
    sa.Column('photometric', sa.Boolean(), nullable=True),
    sa.Column('survey_component', sa.String(length=16), nullable=True),
    sa.Column('owner', sa.String(length=255), nullable=True, comment='proprietary owner'),
    sa.Column('release_date', terapix_fw.db.types.UTCDateTime(), nullable=True, comment='end of the proprietary period'),
    sa.Column('arrival_date', terapix_fw.db.types.UTCDateTime(), nullable=True),
    sa.Column('suggested_grade', sa.String(length=1), nullable=True, comment='grade suggested by the quality assessment'),
    sa.CheckConstraint("suggested_grade IS NULL OR suggested_grade IN ('A','B','C','D')", name=op.f('ck_exposures_suggested')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exposures')),
    sa.UniqueConstraint('filename', name=op.f('uq_exposures_filename'))
    )
    with op.batch_alter_table('exposures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exposures_date_obs'), ['date_obs'], unique=False)
        batch_op.create_index(batch_op.f('ix_exposures_filter'), ['filter'], unique=False)
        batch_op.create_index(batch_op.f('ix_exposures_mjd_obs'), ['mjd_obs'], unique=False)
        batch_op.create_index(batch_op.f('ix_exposures_qrunid'), ['qrunid'], unique=False)
        batch_op.create_index(batch_op.f('ix_exposures_runid'), ['runid'], unique=False)
        batch_op.create_index(batch_op.f('ix_exposures_survey_component'), ['survey_component'], unique=False)

    op.create_table('records',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('step', sa.String(length=255), nullable=True),
    sa.Column('unit', sa.String(length=255), nullable=True),
    sa.Column('time', terapix_fw.db.types.UTCDateTime(), nullable=True),
    sa.Column('data', sa.Text(), nullable=True, comment='JSON object: the record as the tool sent it'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_records')),
    comment='every record a tool sent whose kind or fields have no table of their own, verbatim'
    )
    with op.batch_alter_table('records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_records_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_records_run_id'), ['run_id'], unique=False)

    op.create_table('nodes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('free_disk', sa.BigInteger(), nullable=True, comment="bytes free on the node's data disk"),
    sa.Column('updated', terapix_fw.db.types.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_nodes')),
    sa.UniqueConstraint('name', name=op.f('uq_nodes_name'))
    )
    op.create_table('releases',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('release_date', terapix_fw.db.types.UTCDateTime(), nullable=True),
    sa.Column('survey_component', sa.String(length=16), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_releases')),
    sa.UniqueConstraint('name', 'version', name=op.f('uq_releases_name'))
    )
    op.create_table('runs',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('version', sa.String(length=64), nullable=True),
    sa.Column('instruction_file', sa.String(length=2048), nullable=True),
    sa.Column('workdir', sa.String(length=2048), nullable=True),
    sa.Column('mode', sa.String(length=16), nullable=True),
    sa.Column('executor', sa.String(length=32), nullable=True),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('user', sa.String(length=255), nullable=True),
    sa.Column('start', terapix_fw.db.types.UTCDateTime(), nullable=True),
    sa.Column('end', terapix_fw.db.types.UTCDateTime(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=True, comment='running, done, failed'),
    sa.Column('parameters', sa.Text(), nullable=True, comment='JSON object'),
    sa.Column('summary', sa.Text(), nullable=True, comment='JSON object: units by status'),
    sa.PrimaryKeyConstraint('run_id', name=op.f('pk_runs'))
    )
    op.create_table('transfers',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('direction', sa.String(length=8), nullable=False, comment='in or out'),
    sa.Column('node', sa.String(length=255), nullable=False),
    sa.Column('path', sa.String(length=2048), nullable=True),
    sa.Column('bytes', sa.BigInteger(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=True),
    sa.Column('start', terapix_fw.db.types.UTCDateTime(), nullable=True),
    sa.Column('end', terapix_fw.db.types.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transfers'))
    )
    op.create_table('catalogs',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('path', sa.String(length=2048), nullable=False),
    sa.Column('path_hash', sa.String(length=64), nullable=False),
    sa.Column('exposure_id', sa.Integer(), nullable=True),
    sa.Column('nsources', sa.Integer(), nullable=True),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('created', terapix_fw.db.types.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['exposure_id'], ['exposures.id'], name=op.f('fk_catalogs_exposure_id_exposures'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_catalogs')),
    sa.UniqueConstraint('path_hash', name=op.f('uq_catalogs_path_hash'))
    )
    op.create_table('extensions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('exposure_id', sa.Integer(), nullable=False),
    sa.Column('ccd', sa.Integer(), nullable=False, comment='CCD number (1-based image extension)'),
    sa.Column('extname', sa.String(length=64), nullable=True),
    sa.Column('naxis1', sa.Integer(), nullable=True),
    sa.Column('naxis2', sa.Integer(), nullable=True),
    sa.Column('ra', sa.Double(), nullable=True, comment='WCS centre, degrees'),
    sa.Column('dec', sa.Double(), nullable=True, comment='WCS centre, degrees'),
    sa.ForeignKeyConstraint(['exposure_id'], ['exposures.id'], name=op.f('fk_extensions_exposure_id_exposures'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_extensions')),
    sa.UniqueConstraint('exposure_id', 'ccd', name=op.f('uq_extensions_exposure_id'))
    )
    op.create_table('grades',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('exposure_id', sa.Integer(), nullable=False),
    sa.Column('grade', sa.String(length=1), nullable=False),
    sa.Column('author', sa.String(length=255), nullable=False),
    sa.Column('time', terapix_fw.db.types.UTCDateTime(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.CheckConstraint("grade IN ('A','B','C','D')", name=op.f('ck_grades_grade')),
    sa.ForeignKeyConstraint(['exposure_id'], ['exposures.id'], name=op.f('fk_grades_exposure_id_exposures'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_grades'))
    )
    with op.batch_alter_table('grades', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_grades_exposure_id'), ['exposure_id'], unique=False)

    op.create_table('header_keywords',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('exposure_id', sa.Integer(), nullable=False),
    sa.Column('extension', sa.Integer(), nullable=False, comment='0 = primary header'),
    sa.Column('keyword', sa.String(length=80), nullable=False),
    sa.Column('value', sa.Text(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['exposure_id'], ['exposures.id'], name=op.f('fk_header_keywords_exposure_id_exposures'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_header_keywords')),
    sa.UniqueConstraint('exposure_id', 'extension', 'keyword', name=op.f('uq_header_keywords_exposure_id'))
    )
    with op.batch_alter_table('header_keywords', schema=None) as batch_op:
        batch_op.create_index('ix_header_keywords_keyword', ['keyword'], unique=False)

    op.create_table('quality_metrics',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('exposure_id', sa.Integer(), nullable=False),
    sa.Column('ccd', sa.Integer(), nullable=False, comment='0 = the whole exposure'),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('value', sa.Double(), nullable=True),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('time', terapix_fw.db.types.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['exposure_id'], ['exposures.id'], name=op.f('fk_quality_metrics_exposure_id_exposures'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quality_metrics')),
    sa.UniqueConstraint('exposure_id', 'ccd', 'name', name=op.f('uq_quality_metrics_exposure_id'))
    )
    op.create_table('stacks',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('release_id', sa.Integer(), nullable=True),
    sa.Column('path', sa.String(length=2048), nullable=True),
    sa.Column('ra', sa.Double(), nullable=True),
    sa.Column('dec', sa.Double(), nullable=True),
    sa.Column('filter', sa.String(length=64), nullable=True),
    sa.Column('survey_component', sa.String(length=16), nullable=True),
    sa.Column('release_date', terapix_fw.db.types.UTCDateTime(), nullable=True),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['release_id'], ['releases.id'], name=op.f('fk_stacks_release_id_releases'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stacks')),
    sa.UniqueConstraint('name', 'version', name=op.f('uq_stacks_name'))
    )
    op.create_table('steps',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('step', sa.String(length=255), nullable=False),
    sa.Column('tool', sa.String(length=255), nullable=True),
    sa.Column('tool_version', sa.String(length=64), nullable=True),
    sa.Column('distribution', sa.String(length=255), nullable=True),
    sa.Column('fanout', sa.String(length=16), nullable=True),
    sa.Column('priority', sa.Integer(), nullable=True),
    sa.Column('depends', sa.Text(), nullable=True, comment='JSON list of step ids'),
    sa.Column('config', sa.Text(), nullable=True, comment='JSON object: effective configuration'),
    sa.Column('non_defaults', sa.Text(), nullable=True, comment='JSON object'),
    sa.Column('config_file', sa.String(length=2048), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=True, comment='running, done, failed'),
    sa.Column('start', terapix_fw.db.types.UTCDateTime(), nullable=True),
    sa.Column('end', terapix_fw.db.types.UTCDateTime(), nullable=True),
    sa.Column('summary', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.run_id'], name=op.f('fk_steps_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_steps')),
    sa.UniqueConstraint('run_id', 'step', name=op.f('uq_steps_run_id'))
    )
    op.create_table('storage',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('exposure_id', sa.Integer(), nullable=False),
    sa.Column('node', sa.String(length=255), nullable=False),
    sa.Column('path', sa.String(length=2048), nullable=False),
    sa.Column('path_hash', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=True),
    sa.Column('checksum', sa.String(length=64), nullable=True),
    sa.Column('compression', sa.String(length=32), nullable=True, comment='none, gzip, fpack (Rice)...'),
    sa.ForeignKeyConstraint(['exposure_id'], ['exposures.id'], name=op.f('fk_storage_exposure_id_exposures'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_storage')),
    sa.UniqueConstraint('exposure_id', 'node', 'path_hash', name=op.f('uq_storage_exposure_id'))
    )
    op.create_table('stack_images',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('stack_id', sa.Integer(), nullable=False),
    sa.Column('list', sa.String(length=16), nullable=False, comment="'stack' or 'astrometry'"),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['stack_id'], ['stacks.id'], name=op.f('fk_stack_images_stack_id_stacks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stack_images')),
    sa.UniqueConstraint('stack_id', 'list', 'filename', name=op.f('uq_stack_images_stack_id'))
    )
    op.create_table('units',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('step_pk', sa.Integer(), nullable=False),
    sa.Column('unit', sa.String(length=255), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=True),
    sa.Column('inputs', sa.Text(), nullable=True, comment='JSON list of paths'),
    sa.Column('extension', sa.Integer(), nullable=True),
    sa.Column('grp', sa.String(length=255), nullable=True),
    sa.Column('attempt', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=True, comment='done, failed, skipped'),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('start', terapix_fw.db.types.UTCDateTime(), nullable=True),
    sa.Column('end', terapix_fw.db.types.UTCDateTime(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('log_path', sa.String(length=2048), nullable=True),
    sa.Column('config', sa.Text(), nullable=True, comment='JSON object'),
    sa.ForeignKeyConstraint(['step_pk'], ['steps.id'], name=op.f('fk_units_step_pk_steps'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_units')),
    sa.UniqueConstraint('step_pk', 'unit', name=op.f('uq_units_step_pk'))
    )
    op.create_table('products',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('path', sa.String(length=2048), nullable=False),
    sa.Column('path_hash', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=True),
    sa.Column('checksum', sa.String(length=64), nullable=False, comment="SHA-256; '' if never read"),
    sa.Column('size', sa.BigInteger(), nullable=True),
    sa.Column('unit_pk', sa.Integer(), nullable=True, comment='unit that made it; NULL for external inputs'),
    sa.Column('created', terapix_fw.db.types.UTCDateTime(), nullable=True),
    sa.Column('meta', sa.Text(), nullable=True, comment='JSON object'),
    sa.ForeignKeyConstraint(['unit_pk'], ['units.id'], name=op.f('fk_products_unit_pk_units'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_products')),
    sa.UniqueConstraint('path_hash', 'checksum', name=op.f('uq_products_path_hash'))
    )
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_products_path_hash'), ['path_hash'], unique=False)

    op.create_table('provenance',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=False),
    sa.Column('unit_pk', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['parent_id'], ['products.id'], name=op.f('fk_provenance_parent_id_products'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_provenance_product_id_products'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['unit_pk'], ['units.id'], name=op.f('fk_provenance_unit_pk_units'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_provenance')),
    sa.UniqueConstraint('product_id', 'parent_id', name=op.f('uq_provenance_product_id'))
    )
    with op.batch_alter_table('provenance', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_provenance_parent_id'), ['parent_id'], unique=False)



def downgrade():
    # dropping a table drops its indexes (MySQL refuses to drop an index a foreign key needs)
    op.drop_table('provenance')
    op.drop_table('products')
    op.drop_table('units')
    op.drop_table('stack_images')
    op.drop_table('storage')
    op.drop_table('steps')
    op.drop_table('stacks')
    op.drop_table('quality_metrics')
    op.drop_table('header_keywords')
    op.drop_table('grades')
    op.drop_table('extensions')
    op.drop_table('catalogs')
    op.drop_table('transfers')
    op.drop_table('runs')
    op.drop_table('releases')
    op.drop_table('nodes')
    op.drop_table('exposures')
    op.drop_table('records')
    op.drop_table('documents')
