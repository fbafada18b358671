"""Alembic environment of RDBix: run through terapix_fw.db.migrate (``terapix db upgrade``), which passes
an open connection.  SQLite uses batch mode so that ALTER TABLE works by table copy."""
from alembic import context

from terapix_fw.db.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
with context.begin_transaction():
    context.run_migrations()
