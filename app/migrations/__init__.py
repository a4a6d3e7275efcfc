"""Alembic migrations for taskexec (packaged so an installed service can migrate itself)."""
