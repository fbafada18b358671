"""file digests: the persistent SHA-256 cache of files already read

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

The runner and ingestion look a file's SHA-256 up in ``file_digests`` (by node and path) and trust it
only while the file's device, inode, size, mtime and ctime are those recorded with it, as git's index
does; a new table only.
"""
from alembic import op
import sqlalchemy as sa
import terapix_fw.db.types

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('file_digests',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('node', sa.String(length=255), nullable=False,
              comment='host whose file system the stat fields describe (device and inode numbers are per host)'),
    sa.Column('path_hash', sa.String(length=64), nullable=False, comment='SHA-1 of the resolved absolute path'),
    sa.Column('path', sa.String(length=2048), nullable=False, comment='resolved absolute path'),
    sa.Column('st_dev', sa.String(length=20), nullable=False, comment='device number (unsigned 64-bit, as text)'),
    sa.Column('st_ino', sa.String(length=20), nullable=False, comment='inode number (unsigned 64-bit, as text)'),
    sa.Column('size', sa.BigInteger(), nullable=False, comment='bytes'),
    sa.Column('mtime_ns', sa.BigInteger(), nullable=False, comment='modification time, ns since 1970'),
    sa.Column('ctime_ns', sa.BigInteger(), nullable=False, comment='inode change time, ns since 1970'),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('hashed_ns', sa.BigInteger(), nullable=False,
              comment='when the hashing began, ns since 1970: an mtime not older than that is racy, never trusted'),
    sa.Column('recorded', terapix_fw.db.types.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_file_digests')),
    sa.UniqueConstraint('node', 'path_hash', name=op.f('uq_file_digests_node')),
    comment='SHA-256 of files already read, valid while path, device, inode, size, mtime and ctime are unchanged'
    )


def downgrade():
    op.drop_table('file_digests')
