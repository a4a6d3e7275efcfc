"""Run Alembic migrations from code (`taskexec migrate`, app start-up, tests)."""

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url

from app import migrations


def alembic_config(database_url: str) -> Config:
    """An Alembic config for the packaged migrations and the given database."""
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.set_main_option("path_separator", "os")
    # Alembic's config is ConfigParser-based: escape % in passwords.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def ensure_sqlite_directory(database_url: str) -> None:
    """Create the directory of a file-based SQLite database."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database to `revision` (blocking; uses its own event loop)."""
    ensure_sqlite_directory(database_url)
    command.upgrade(alembic_config(database_url), revision)
    use_wal(database_url)


def use_wal(database_url: str) -> None:
    """Leave a SQLite file in WAL mode (persistent), before any concurrent connection: the
    switch needs the file to itself, so doing it on first use races between connections."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        with contextlib.closing(sqlite3.connect(url.database)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str, revision: str = "head") -> None:
    """`upgrade` from inside a running event loop (Alembic's env runs its own loop)."""
    await asyncio.to_thread(upgrade, database_url, revision)
