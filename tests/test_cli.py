"""The installed ``openlines`` command as an operator runs it: ``migrate`` on an empty
database, then ``keys create``, whose key the API accepts."""

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import make_url

from api.app import create_app
from core.api_keys import digest
from core.config import Settings
from core.db import create_engine, session_factory
from core.local_http import free_port
from core.migrate import alembic_config
from core.models import ApiKey, Base, Bot
from tests.conftest import client_for, empty_postgres_database

OPENLINES = Path(sys.executable).parent / "openlines"  # the console script of this install


def openlines(database_url: str, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the command in ``folder`` with only this database configured."""
    return openlines_with(database_url, folder, {}, *args)


def openlines_with(
    database_url: str, folder: Path, settings: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """Run the command in ``folder`` with this database and these ``OPENLINES_*`` settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINES_")}
    env.update(settings)
    env["OPENLINES_DATABASE_URL"] = database_url
    env["OPENLINES_DATA_DIR"] = str(folder / "data")
    return subprocess.run(
        [str(OPENLINES), *args], capture_output=True, text=True, env=env, cwd=folder, timeout=60
    )


class Migrated(NamedTuple):
    url: str
    folder: Path
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Migrated:
    """A fresh SQLite file that ``openlines migrate`` has just set up."""
    folder = tmp_path_factory.mktemp("cli")
    url = f"sqlite+aiosqlite:///{folder / 'openlines.db'}"
    return Migrated(url, folder, openlines(url, folder, "migrate"))


async def schema(url: str) -> tuple[set[str], str | None]:
    """The database's tables and its Alembic revision."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
            revision = await connection.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        await engine.dispose()
    return tables, revision


async def stored_keys(url: str) -> list[ApiKey]:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            return list(await session.scalars(select(ApiKey).order_by(ApiKey.id)))
    finally:
        await engine.dispose()


async def test_migrate_creates_the_schema(migrated: Migrated):
    assert migrated.result.returncode == 0, migrated.result.stderr
    assert migrated.result.stdout.strip().endswith("is up to date")
    tables, revision = await schema(migrated.url)
    assert set(Base.metadata.tables) <= tables
    head = ScriptDirectory.from_config(alembic_config(migrated.url)).get_current_head()
    assert revision == head


async def test_keys_create_prints_a_key_that_the_api_accepts(migrated: Migrated):
    assert migrated.result.returncode == 0, migrated.result.stderr
    before = await stored_keys(migrated.url)
    result = openlines(migrated.url, migrated.folder, "keys", "create", "--role", "admin")
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith("ol_") and len(key.split()) == 1, result.stdout

    (row,) = (await stored_keys(migrated.url))[len(before) :]
    assert (row.role, row.key_hash, row.revoked_at) == ("admin", digest(key), None)
    stored = [str(getattr(row, column.key)) for column in ApiKey.__table__.columns]
    assert all(key not in value for value in stored), stored

    settings = Settings(database_url=migrated.url, bootstrap_admin_key=None)
    app = create_app(settings)
    async with app.router.lifespan_context(app), client_for(app, key) as new_admin:
        listed = await new_admin.get("/v1/api-keys")
        created = await new_admin.post("/v1/operators", json={"name": "Ann"})
    assert listed.status_code == 200, listed.text
    assert {"id": row.id, "role": "admin"}.items() <= listed.json()[-1].items()
    assert created.status_code == 201, created.text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "root"], "argument --role: invalid choice: 'root'"),
        (["--role", "operator"], "--operator-id is required for --role operator"),
        (["--role", "operator", "--operator-id", "0"], "'0' is not an id (1..2147483647)"),
        (["--role", "bot", "--bot-id", "3000000000"], "'3000000000' is not an id"),
    ],
)
def test_keys_create_refuses_bad_arguments_clearly(tmp_path: Path, args: list[str], message: str):
    database = tmp_path / "openlines.db"
    result = openlines(f"sqlite+aiosqlite:///{database}", tmp_path, "keys", "create", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""  # no key printed
    assert not database.exists()  # refused before the database is opened


async def test_keys_create_for_an_unknown_operator_is_a_clear_error(migrated: Migrated):
    assert migrated.result.returncode == 0, migrated.result.stderr
    args = ("keys", "create", "--role", "operator", "--operator-id", "999")
    result = openlines(migrated.url, migrated.folder, *args)
    assert result.returncode != 0
    assert result.stdout == ""
    assert "Traceback" not in result.stderr, result.stderr
    assert "operator 999" in result.stderr


async def add_bot(url: str, deleted: bool = False) -> int:
    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            bot = Bot(name="Greeter", deleted_at=datetime.now(UTC) if deleted else None)
            session.add(bot)
            await session.commit()
            return bot.id
    finally:
        await engine.dispose()


async def test_keys_create_for_an_unknown_or_deleted_bot_is_a_clear_error(migrated: Migrated):
    assert migrated.result.returncode == 0, migrated.result.stderr
    before = await stored_keys(migrated.url)
    for bot_id in (999, await add_bot(migrated.url, deleted=True)):
        args = ("keys", "create", "--role", "bot", "--bot-id", str(bot_id))
        result = openlines(migrated.url, migrated.folder, *args)
        assert result.returncode == 2
        assert result.stdout == ""
        assert "Traceback" not in result.stderr, result.stderr
        assert f"bot {bot_id} does not exist" in result.stderr
    assert len(await stored_keys(migrated.url)) == len(before)

    bot_id = await add_bot(migrated.url)
    args = ("keys", "create", "--role", "bot", "--bot-id", str(bot_id))
    result = openlines(migrated.url, migrated.folder, *args)
    assert result.returncode == 0, result.stderr
    (row,) = (await stored_keys(migrated.url))[len(before) :]
    assert (row.role, row.bot_id, row.key_hash) == ("bot", bot_id, digest(result.stdout.strip()))


@pytest.fixture
async def postgres_url_with_password() -> AsyncIterator[tuple[str, str]]:
    """An empty PostgreSQL database: its URL with a password in it, and that password (one
    is added when the test URL has none; the local test server does not check it)."""
    async with empty_postgres_database() as url:
        parsed = make_url(url)
        if parsed.password is None:
            parsed = parsed.set(password="not-for-logs")
        yield parsed.render_as_string(hide_password=False), str(parsed.password)


def test_migrate_does_not_print_the_database_password(
    postgres_url_with_password: tuple[str, str], tmp_path: Path
):
    url, password = postgres_url_with_password
    result = openlines(url, tmp_path, "migrate")
    assert result.returncode == 0, result.stderr
    assert "is up to date" in result.stdout
    assert password not in result.stdout + result.stderr


@pytest.mark.parametrize("key", ["CHANGE_ME", "change-me-change-me-change-me-change-me", "x" * 40])
def test_a_guessable_bootstrap_admin_key_stops_the_api_and_the_worker(tmp_path: Path, key: str):
    database = f"sqlite+aiosqlite:///{tmp_path / 'openlines.db'}"
    for command in ("api", "worker"):
        env_key = {"OPENLINES_BOOTSTRAP_ADMIN_KEY": key}
        result = openlines_with(database, tmp_path, env_key, command)
        assert result.returncode == 2, result.stderr
        assert "invalid setting bootstrap_admin_key" in result.stderr
        assert "at least 32 random characters" in result.stderr
        assert "Traceback" not in result.stderr
        assert key not in result.stderr


async def test_a_bootstrap_admin_key_is_warned_about_while_set(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'openlines.db'}",
        bootstrap_admin_key="aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bD1fH",
    )
    app = create_app(settings)
    with caplog.at_level("WARNING", logger="openlines.api"):
        async with app.router.lifespan_context(app):
            pass
    assert "OPENLINES_BOOTSTRAP_ADMIN_KEY is set" in caplog.text
    assert settings.bootstrap_admin_key is not None
    assert settings.bootstrap_admin_key.get_secret_value() not in caplog.text


def test_the_api_and_the_worker_stop_at_start_when_temporal_cannot_be_reached(tmp_path: Path):
    database = f"sqlite+aiosqlite:///{tmp_path / 'openlines.db'}"
    nowhere = {"OPENLINES_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"}
    for command in ("api", "worker"):
        result = openlines_with(database, tmp_path, nowhere, command)
        assert result.returncode == 2, result.stderr
        assert f"openlines {command}: cannot reach Temporal at 127.0.0.1:" in result.stderr
        assert "OPENLINES_TEMPORAL_ADDRESS" in result.stderr
        assert "Traceback" not in result.stderr
    checked = openlines_with(database, tmp_path, nowhere, "temporal", "check")
    assert checked.returncode == 1
    assert checked.stderr.startswith("problem: cannot reach Temporal")


def test_a_client_certificate_needs_its_key(tmp_path: Path):
    database = f"sqlite+aiosqlite:///{tmp_path / 'openlines.db'}"
    (tmp_path / "client.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    alone = {"OPENLINES_TEMPORAL_TLS_CERT": str(tmp_path / "client.pem")}
    result = openlines_with(database, tmp_path, alone, "temporal", "check")
    assert result.returncode == 2
    assert "OPENLINES_TEMPORAL_TLS_CERT and OPENLINES_TEMPORAL_TLS_KEY go together" in result.stderr
    missing = {"OPENLINES_TEMPORAL_TLS_CA": str(tmp_path / "nope.pem")}
    result = openlines_with(database, tmp_path, missing, "temporal", "check")
    assert result.returncode == 2
    assert "invalid setting temporal_tls_ca" in result.stderr
    assert "nope.pem is not a readable file" in result.stderr
