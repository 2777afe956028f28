"""Shared fixtures: one fresh, migrated database per test, on SQLite and on PostgreSQL.

PostgreSQL runs when HEALTHLOCK_TEST_DATABASE_URL is set (CI sets it); otherwise those cases are
skipped with a reason that says how to enable them.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.settings import async_url
from models.migrate import upgrade_to_head

PG_ENV = "HEALTHLOCK_TEST_DATABASE_URL"

@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An async SQLAlchemy URL of a fresh database at the newest schema."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'healthlock.db'}"
        upgrade_to_head(url)
        yield url
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"PostgreSQL not configured: set {PG_ENV}=postgresql://user@host:5432/db to run these cases")
    name = f"hl_test_{uuid.uuid4().hex[:12]}"
    admin = make_url(async_url(base))
    asyncio.run(_admin(admin.render_as_string(hide_password=False), f'CREATE DATABASE "{name}"'))
    url = admin.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade_to_head(url)
        yield url
    finally:
        drop = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        asyncio.run(_admin(admin.render_as_string(hide_password=False), drop))

async def _admin(url: str, statement: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()

