"""Alembic migrations of the SQL store (a package so wheels include them)."""
