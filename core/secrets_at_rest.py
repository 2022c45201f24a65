"""Secrets stored encrypted with the install's key (``OPENLINES_SECRET_KEY``).

Channel and webhook secrets must stay readable (they sign and verify HMACs), so they are
encrypted rather than hashed: with Fernet (AES-128-CBC and HMAC-SHA256) and a key from the
environment, so a copy of the database alone (a backup, a dump, a replica) does not give
them away. ``EncryptedString`` does it on the column, and the code reads plain text;
``SecretsInJson`` does it for the secret values of a JSON column (a Telegram bot token in a
channel's config).

* A value is stored as ``enc:v1:<fernet token>``; the version leaves room for another format.
* A stored value without that prefix is read as it is: rows written before a key was
  configured, or on installs without one. Such a row is encrypted when next written (a
  secret rotation writes it).
* With no key configured values are stored as they are (the API warns at start).
* An ``enc:v1:`` value the key cannot open (another key, or none) raises
  ``UndecryptableSecret`` naming the column: never garbage, never the raw token.

The key comes from the process's settings (``core.config.get_settings``), read once, not from
the ``Settings`` an app was built with: a column type has no way to reach that. Tests set
``OPENLINES_SECRET_KEY`` and call ``reset_key_cache()``.
"""

from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import JSON, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from core.config import get_settings

PREFIX = "enc:v1:"


class UndecryptableSecret(Exception):
    """A stored secret is encrypted, and the configured key cannot decrypt it."""


@lru_cache(maxsize=1)
def _cipher() -> Fernet | None:
    """The configured key's cipher, or None without a key."""
    key = get_settings().secret_key
    return Fernet(key.get_secret_value()) if key is not None else None


def reset_key_cache() -> None:
    """Read the key from the environment again at the next use (for tests)."""
    _cipher.cache_clear()
    get_settings.cache_clear()


def encrypt(plain: str) -> str:
    """What to store for ``plain``: encrypted with the key, or as it is without one."""
    cipher = _cipher()
    if cipher is None:
        if plain.startswith(PREFIX):
            # It would be read back as an encrypted value and fail to decrypt.
            raise ValueError(f"a secret starting with {PREFIX!r} cannot be stored unencrypted")
        return plain
    return PREFIX + cipher.encrypt(plain.encode()).decode("ascii")


def decrypt(stored: str, column: str = "a secret column") -> str:
    """The plain value of what ``encrypt`` stored (or of a value stored before a key)."""
    if not stored.startswith(PREFIX):
        return stored
    cipher = _cipher()
    if cipher is None:
        raise UndecryptableSecret(
            f"{column} is stored encrypted but OPENLINES_SECRET_KEY is not set: set it to the "
            "key the value was encrypted with"
        )
    try:
        return cipher.decrypt(stored.removeprefix(PREFIX).encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        pass
    # Raised outside the except block: nothing about the token is chained to it.
    raise UndecryptableSecret(
        f"{column} cannot be decrypted: OPENLINES_SECRET_KEY does not match the key the value "
        "was encrypted with"
    )


class EncryptedString(TypeDecorator[str]):
    """A string column whose values are stored with ``encrypt`` and read with ``decrypt``.

    ``column`` names it in errors. Encrypted values are longer than the plain ones (a
    43-character secret takes 147) and differ on every write, so a column of this type can
    be read and written but not compared in a query.
    """

    impl = String
    cache_ok = True

    def __init__(self, length: int, column: str) -> None:
        super().__init__(length)
        self.column = column

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else encrypt(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else decrypt(value, self.column)


class SecretsInJson(TypeDecorator[dict[str, Any]]):
    """A JSON object column whose string values under ``secret_keys`` are stored with
    ``encrypt`` and read with ``decrypt``; the other values stay readable JSON.

    Written whole, as ``EncryptedString`` is: assign a new dict to change one.
    """

    impl = JSON
    cache_ok = True

    def __init__(self, column: str, secret_keys: frozenset[str]) -> None:
        super().__init__()
        self.column, self.secret_keys = column, secret_keys

    def process_bind_param(
        self, value: dict[str, Any] | None, dialect: Dialect
    ) -> dict[str, Any] | None:
        if value is None:
            return None
        return {
            key: encrypt(item) if key in self.secret_keys and isinstance(item, str) else item
            for key, item in value.items()
        }

    def process_result_value(
        self, value: dict[str, Any] | None, dialect: Dialect
    ) -> dict[str, Any] | None:
        if value is None:
            return None
        return {
            key: decrypt(item, f"{self.column}.{key}")
            if key in self.secret_keys and isinstance(item, str)
            else item
            for key, item in value.items()
        }
