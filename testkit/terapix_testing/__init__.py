"""Pytest fixtures and service launchers for testing terapix-fw and its plugins (kept out of the
installed framework: the tools never import this package).

* ``rdbix``: pytest fixtures of RDBix over SQLite and a real MariaDB server (``db_url``, ``empty_db_url``,
  ``mariadb_server``, ``recorded_dropin``); load them with ``pytest_plugins = ["terapix_testing.rdbix"]``;
* ``services``: helpers that need no pytest: starting MariaDB, a dbClient server process, documents.
"""
