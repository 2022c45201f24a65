"""Channel and webhook secrets at rest: encrypted with ``OPENLINES_SECRET_KEY`` when it is set,
read back as plain text by the code, plain values of before the key still read, and a wrong
key a clear error rather than garbage (``core/secrets_at_rest.py``)."""

import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from httpx import AsyncClient
from pydantic import ValidationError
from sqlalchemy import text

from channels import registry
from core import dev_stack
from core.config import Settings
from core.events.models import WebhookSubscription
from core.models import CHANNEL_CONFIG_SECRETS, Channel
from core.secrets_at_rest import (
    PREFIX,
    UndecryptableSecret,
    decrypt,
    encrypt,
    reset_key_cache,
)
from tests.channels.telegram_fake import TOKEN, FakeTelegram
from tests.conftest import ADMIN_KEY, client_for

INBOUND = {"chat": {"external_id": "c"}, "message": {"external_id": "m", "text": "Hi"}}


@contextmanager
def secret_key(key: str | None) -> Iterator[None]:
    """``OPENLINES_SECRET_KEY`` set to ``key`` (None: unset) inside the block, as a
    restarted process would read it; the environment and the key read are restored after."""
    with pytest.MonkeyPatch.context() as patch:
        if key is None:
            patch.delenv("OPENLINES_SECRET_KEY", raising=False)
        else:
            patch.setenv("OPENLINES_SECRET_KEY", key)
        reset_key_cache()
        try:
            yield
        finally:
            reset_key_cache()
    reset_key_cache()  # once more, after the environment is back as it was


@pytest.fixture
def key() -> Iterator[str]:
    """A key set for the whole test."""
    made = Fernet.generate_key().decode()
    with secret_key(made):
        yield made


async def raw(app: FastAPI, table: str, column: str, row_id: int) -> str | None:
    """The column as stored, past the ORM."""
    async with app.state.sessions() as session:
        query = text(f"select {column} from {table} where id=:id")
        value: str | None = await session.scalar(query, {"id": row_id})
        return value


async def new_channel(admin: AsyncClient) -> tuple[int, str]:
    """An ``api`` channel on a new line; its id and secret."""
    line = await admin.post("/v1/lines", json={"name": "Support"})
    assert line.status_code == 201, line.text
    created = await admin.post(f"/v1/lines/{line.json()['id']}/channels", json={"type": "api"})
    assert created.status_code == 201, created.text
    return created.json()["id"], created.json()["secret"]


async def inbound_status(app: FastAPI, channel_id: int, secret: str, external_id: str) -> int:
    """What the channel's inbound endpoint answers a client message carrying ``secret``."""
    body = {**INBOUND, "message": {**INBOUND["message"], "external_id": external_id}}
    async with client_for(app, secret) as as_channel:
        response = await as_channel.post(f"/v1/channels/{channel_id}/messages", json=body)
    return response.status_code


# --- through the API, on SQLite and PostgreSQL ----------------------------------------------


async def test_a_channel_secret_is_stored_encrypted_and_still_authenticates(
    key: str, app: FastAPI, admin: AsyncClient
) -> None:
    channel_id, secret = await new_channel(admin)

    stored = await raw(app, "channels", "secret", channel_id)
    assert stored is not None and stored.startswith(PREFIX)
    assert secret not in stored
    assert await inbound_status(app, channel_id, secret, "m") == 202
    assert await inbound_status(app, channel_id, "not-the-secret", "m2") == 401
    async with app.state.sessions() as session:
        channel = await session.get(Channel, channel_id)
    assert channel is not None and channel.secret == secret


async def test_a_rotated_channel_keeps_both_secrets_encrypted(
    key: str, app: FastAPI, admin: AsyncClient
) -> None:
    channel_id, old = await new_channel(admin)

    rotated = await admin.post(f"/v1/channels/{channel_id}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]

    for column, plain in (("secret", new), ("previous_secret", old)):
        stored = await raw(app, "channels", column, channel_id)
        assert stored is not None and stored.startswith(PREFIX) and plain not in stored
    assert await inbound_status(app, channel_id, new, "m1") == 202
    assert await inbound_status(app, channel_id, old, "m2") == 202  # its grace period


async def test_a_secret_stored_before_the_key_is_still_read_and_encrypted_when_rotated(
    app: FastAPI, admin: AsyncClient
) -> None:
    with secret_key(None):
        channel_id, plain = await new_channel(admin)
        assert await raw(app, "channels", "secret", channel_id) == plain

    with secret_key(Fernet.generate_key().decode()):
        assert await raw(app, "channels", "secret", channel_id) == plain  # nothing rewrote it
        assert await inbound_status(app, channel_id, plain, "m1") == 202
        rotated = await admin.post(f"/v1/channels/{channel_id}/rotate-secret")
        assert rotated.status_code == 200, rotated.text

        new = rotated.json()["secret"]
        stored = await raw(app, "channels", "secret", channel_id)
        assert stored is not None and stored.startswith(PREFIX) and new not in stored
        previous = await raw(app, "channels", "previous_secret", channel_id)
        assert previous is not None and previous.startswith(PREFIX)  # written, so encrypted
        assert await inbound_status(app, channel_id, new, "m2") == 202
        assert await inbound_status(app, channel_id, plain, "m3") == 202


async def test_without_a_key_secrets_are_stored_as_they_are(
    app: FastAPI, admin: AsyncClient
) -> None:
    with secret_key(None):
        channel_id, secret = await new_channel(admin)

        assert await raw(app, "channels", "secret", channel_id) == secret
        assert await inbound_status(app, channel_id, secret, "m") == 202


async def test_a_webhook_subscriptions_secret_is_stored_encrypted(
    key: str, app: FastAPI, admin: AsyncClient
) -> None:
    created = await admin.post(
        "/v1/webhooks", json={"url": "https://hooks.example/x", "events": ["*"]}
    )
    assert created.status_code == 201, created.text
    webhook_id, secret = created.json()["id"], created.json()["secret"]

    stored = await raw(app, "webhooks", "secret", webhook_id)
    assert stored is not None and stored.startswith(PREFIX) and secret not in stored
    rotated = await admin.post(f"/v1/webhooks/{webhook_id}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    previous = await raw(app, "webhooks", "previous_secret", webhook_id)
    assert previous is not None and previous.startswith(PREFIX) and secret not in previous
    async with app.state.sessions() as session:  # what the delivery activity signs with
        row = await session.get(WebhookSubscription, webhook_id)
    assert row is not None
    assert (row.secret, row.previous_secret) == (rotated.json()["secret"], secret)


async def test_a_telegram_bot_token_is_stored_encrypted_and_the_bot_still_answers(
    key: str, make_app: Callable[..., Any], telegram_fake: FakeTelegram
) -> None:
    app = await make_app(telegram_api_url=telegram_fake.url, public_url="https://ol.example")
    async with client_for(app, ADMIN_KEY) as admin:
        line = (await admin.post("/v1/lines", json={})).json()["id"]
        created = await admin.post(
            f"/v1/lines/{line}/channels", json={"type": "telegram", "config": {"bot_token": TOKEN}}
        )
        assert created.status_code == 201, created.text
        channel_id = created.json()["id"]
        health = await admin.get(f"/v1/channels/{channel_id}")  # asks Telegram with the token

    stored = await raw(app, "channels", "config", channel_id)
    assert stored is not None and TOKEN.split(":")[1] not in str(stored)
    assert health.status_code == 200 and health.json()["health"] is not None, health.text
    async with app.state.sessions() as session:
        channel = await session.get(Channel, channel_id)
    assert channel is not None and channel.config["bot_token"] == TOKEN
    webhook_secret = channel.config["webhook_secret"]
    assert webhook_secret and webhook_secret not in str(stored)


def test_every_secret_a_connector_hides_is_encrypted() -> None:
    for name, connector in registry.CONNECTORS.items():
        assert connector.hidden_config <= CHANNEL_CONFIG_SECRETS, name


async def test_the_longest_secret_the_api_takes_fits_encrypted(
    key: str, app: FastAPI, admin: AsyncClient
) -> None:
    """128 characters of 4-byte UTF-8 (PostgreSQL enforces the column's length)."""
    longest = "\N{GRINNING FACE}" * 128
    created = await admin.post(
        "/v1/webhooks",
        json={"url": "https://hooks.example/x", "events": ["*"], "secret": longest},
    )
    assert created.status_code == 201, created.text

    async with app.state.sessions() as session:
        row = await session.get(WebhookSubscription, created.json()["id"])
    assert row is not None and row.secret == longest


async def test_a_wrong_key_is_a_clear_error_not_garbage(app: FastAPI, admin: AsyncClient) -> None:
    with secret_key(Fernet.generate_key().decode()):
        channel_id, _ = await new_channel(admin)
    stored = await raw(app, "channels", "secret", channel_id)
    assert stored is not None

    with secret_key(Fernet.generate_key().decode()):
        async with app.state.sessions() as session:
            with pytest.raises(UndecryptableSecret) as wrong:
                await session.get(Channel, channel_id)
    with secret_key(None):
        async with app.state.sessions() as session:
            with pytest.raises(UndecryptableSecret) as missing:
                await session.get(Channel, channel_id)

    assert "channels.secret" in str(wrong.value)
    assert "OPENLINES_SECRET_KEY does not match" in str(wrong.value)
    assert "channels.secret" in str(missing.value)
    assert "OPENLINES_SECRET_KEY is not set" in str(missing.value)
    for error in (wrong.value, missing.value):
        assert stored.removeprefix(PREFIX) not in str(error)
        assert error.__cause__ is None and error.__context__ is None


async def test_the_columns_are_widened_on_postgresql(app: FastAPI) -> None:
    async with app.state.sessions() as session:
        if session.get_bind().dialect.name != "postgresql":
            pytest.skip("SQLite does not enforce a VARCHAR's length")
        rows = await session.execute(
            text(
                "select table_name, column_name, character_maximum_length "
                "from information_schema.columns "
                "where table_name in ('channels', 'webhooks') and column_name like '%secret'"
            )
        )
        lengths = {(table, column): length for table, column, length in rows}
    assert lengths == {
        ("channels", "secret"): 1024,
        ("channels", "previous_secret"): 1024,
        ("webhooks", "secret"): 1024,
        ("webhooks", "previous_secret"): 1024,
    }


# --- the values and the setting ---------------------------------------------------------


def test_encrypt_and_decrypt(key: str) -> None:
    first, second = encrypt("s3cret"), encrypt("s3cret")

    assert first.startswith(PREFIX) and first != second  # a fresh IV each time
    assert decrypt(first) == decrypt(second) == "s3cret"
    assert decrypt("plain-from-before") == "plain-from-before"
    assert Fernet(key.encode()).decrypt(first.removeprefix(PREFIX).encode()) == b"s3cret"


def test_without_a_key_values_stay_plain() -> None:
    with secret_key(None):
        assert encrypt("s3cret") == "s3cret"
        assert decrypt("s3cret") == "s3cret"
        with pytest.raises(ValueError, match="cannot be stored unencrypted"):
            encrypt(PREFIX + "looks encrypted")  # it would be unreadable


def test_a_mangled_value_is_an_error(key: str) -> None:
    with pytest.raises(UndecryptableSecret, match=r"webhooks\.secret cannot be decrypted"):
        decrypt(PREFIX + "not-a-fernet-token", "webhooks.secret")


@pytest.mark.parametrize("value", ["short", "x" * 44, Fernet.generate_key().decode()[:-2]])
def test_a_malformed_key_is_refused_naming_the_variable_and_how_to_make_one(value: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(secret_key=value)

    message = str(refused.value)
    assert "OPENLINES_SECRET_KEY must be a Fernet key" in message
    assert "Fernet.generate_key()" in message


def test_an_empty_key_is_no_key() -> None:
    assert Settings(secret_key="").secret_key is None
    good = Fernet.generate_key().decode()
    setting = Settings(secret_key=good).secret_key
    assert setting is not None and setting.get_secret_value() == good
    assert good not in repr(Settings(secret_key=good))


# --- openlines dev ----------------------------------------------------------------------


def test_dev_makes_a_key_once_and_keeps_it_private(tmp_path: Path) -> None:
    made = dev_stack.secret_key(tmp_path)

    path = tmp_path / "secret-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert dev_stack.secret_key(tmp_path) == made  # read back on the next start
    Fernet(made.encode())  # a usable key
    assert Settings(secret_key=made).secret_key is not None


def test_dev_hands_the_key_to_the_api_and_the_worker(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    made = dev_stack.secret_key(tmp_path)

    env = dev_stack.child_env(settings, "admin-key", "sqlite+aiosqlite:///x.db", made)
    assert env["OPENLINES_SECRET_KEY"] == made
    without = dev_stack.child_env(settings, "admin-key", "sqlite+aiosqlite:///x.db")
    assert without.get("OPENLINES_SECRET_KEY") == os.environ.get("OPENLINES_SECRET_KEY")
