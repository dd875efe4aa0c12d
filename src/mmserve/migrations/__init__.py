"""Alembic migrations of the SQL schema (video jobs, API keys, usage records).

Run by ``mmserve db upgrade`` and at every start (:meth:`mmserve.db.Database.upgrade`). The
scripts in ``versions/`` spell the schema out with ``op.*`` instead of importing the tables'
classes: a migration must keep meaning what it meant when it was written, whatever the
models become later. ``tests/test_migrations.py`` checks that the migrated schema equals the
models', on SQLite and on PostgreSQL.

Add one: write ``versions/NNNN_<what>.py`` with ``revision`` and ``down_revision`` (or run
``alembic -c <config> revision --autogenerate`` against a database at head and edit the result).
"""
