"""Server configuration: every knob is an ``OPENLINES_*`` environment variable."""

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Fewer characters than this and a bootstrap admin key is refused (``openlines dev`` makes 41).
MIN_ADMIN_KEY_LENGTH = 32
# Words of sample configs: a key holding one is a placeholder nobody replaced.
_PLACEHOLDER_WORDS = ("changeme", "placeholder", "example", "yourkey", "secret", "password")
MAKE_A_KEY = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
MAKE_A_SECRET_KEY = (
    "python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)


class Settings(BaseSettings):
    """One place that reads the environment; the README lists every field."""

    model_config = SettingsConfigDict(env_prefix="OPENLINES_", extra="ignore")

    data_dir: Path = Field(
        Path("data"), description="Folder for SQLite files and the dev admin key"
    )
    database_url: str = Field(
        "",
        description="SQLAlchemy async URL; empty means a SQLite file in data_dir",
    )
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "openlines"
    temporal_tls: bool = Field(
        False,
        description=(
            "Connect to Temporal over TLS; on by itself when a CA, client certificate, server "
            "name or API key is set"
        ),
    )
    temporal_tls_ca: Path | None = Field(
        None, description="PEM file of the CA that signed the Temporal frontend's certificate"
    )
    temporal_tls_cert: Path | None = Field(
        None, description="PEM file of this client's certificate (mutual TLS)"
    )
    temporal_tls_key: Path | None = Field(
        None, description="PEM file of this client's private key (mutual TLS)"
    )
    temporal_tls_server_name: str | None = Field(
        None, description="Name the frontend's certificate must carry, if not the address's host"
    )
    temporal_api_key: SecretStr | None = Field(
        None, description="API key sent to Temporal (Temporal Cloud); implies TLS"
    )
    temporal_call_timeout: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Seconds an API call waits for Temporal before answering 503",
    )
    temporal_ui_url: str = Field(
        "http://127.0.0.1:8233", description="Base URL of the Temporal UI, used in links"
    )
    bootstrap_admin_key: SecretStr | None = Field(
        None, description="Accepted as an admin key; how a fresh install is first configured"
    )

    max_lines: int = Field(0, ge=0, description="Cap on the number of lines; 0 = no cap")
    max_history_events: int = Field(
        10_000, ge=100, description="A dialog's run continues as new after this many events"
    )
    public_url: str = Field(
        "http://127.0.0.1:8000", description="Base URL of this API, used in notification links"
    )
    smtp_url: SecretStr | None = Field(
        None,
        description="SMTP server for emails to web chat visitors: smtp[s]://user:pass@host:port",
    )
    mail_dir: Path | None = Field(
        None, description="Without an SMTP server, emails are written here as .eml files (dev)"
    )
    mail_from: str = Field("openlines <noreply@localhost>", description="The emails' From")
    visitor_email_after: int = Field(
        120, ge=0, description="Seconds a reply waits unread before it is emailed to the visitor"
    )
    widget_demo: bool = Field(
        False, description="Serve /widget/demo/<channel id>, a sample site with the web chat"
    )
    telegram_api_url: str = Field(
        "https://api.telegram.org",
        description="Base URL of the Telegram Bot API (a local Bot API server, a test fake)",
    )
    crm: Literal["builtin", "bitrix24"] = Field(
        "builtin", description="Where leads go: the built-in CRM or Bitrix24"
    )
    bitrix24_webhook_url: SecretStr = Field(
        SecretStr(""),
        description=(
            "Bitrix24 inbound-webhook URL (https://<portal>/rest/<user>/<token>/); it holds a "
            "token, so it is kept out of errors and logs"
        ),
    )
    secret_key: SecretStr | None = Field(
        None,
        description=(
            "Fernet key that encrypts channel and webhook secrets in the database; unset, "
            "they are stored in plain text"
        ),
    )
    webhook_allow_private: bool = Field(
        False,
        description=(
            "Webhooks (subscriptions and webhook channels) may POST to loopback, private and "
            "link-local addresses; off, only to the public internet"
        ),
    )
    worktime_tracking: bool = Field(
        False,
        description=(
            "Operators clock in: with availability checking, an operator's started workday "
            "makes them available; off, being online does"
        ),
    )
    default_phone_region: str = Field(
        "US", description="Region for phone numbers written without a country code"
    )
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)
    max_body_bytes: int = Field(
        65536, ge=1024, description="Request bodies larger than this are refused with 413"
    )
    rate_limit_per_key: float = Field(
        100.0, ge=0, description="Requests a second per API key, on average (0: no limit)"
    )
    rate_limit_burst_per_key: int = Field(200, ge=1, description="Requests at once per key")
    rate_limit_per_channel: float = Field(
        200.0, ge=0, description="Inbound requests a second per channel (0: no limit)"
    )
    rate_limit_burst_per_channel: int = Field(400, ge=1, description="At once per channel")
    rate_limit_per_ip: float = Field(
        100.0,
        ge=0,
        description="Requests a second per client IP to routes without an API key (0: none)",
    )
    rate_limit_burst_per_ip: int = Field(200, ge=1, description="At once per client IP")
    max_event_streams: int = Field(
        1000, ge=1, description="Open event streams (GET /v1/events) per API process"
    )
    max_event_streams_per_key: int = Field(10, ge=1, description="Open event streams per API key")
    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Serve /metrics on this port (on api_host) instead of the API's own",
    )
    worker_host: str = Field("127.0.0.1", description="Bind address of the worker's port")
    worker_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="The worker serves /metrics, /healthz and /readyz on this port; unset, none",
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="json: one JSON object per log line, with trace and workflow ids"
    )
    temporal_port: int = Field(7233, ge=1, le=65535, description="gRPC port of the dev server")
    temporal_ui_port: int = Field(8233, ge=1, le=65535, description="UI port of the dev server")

    @field_validator("bootstrap_admin_key")
    @classmethod
    def _usable_admin_key(cls, value: SecretStr | None) -> SecretStr | None:
        """Refuse a key anyone could guess: short, a sample config's placeholder, or one
        character repeated."""
        if value is None:
            return None
        key = value.get_secret_value()
        letters = "".join(c for c in key.lower() if c.isalnum())
        if (
            len(key) < MIN_ADMIN_KEY_LENGTH
            or any(word in letters for word in _PLACEHOLDER_WORDS)
            or len(set(key)) < 8
        ):
            raise ValueError(
                f"OPENLINES_BOOTSTRAP_ADMIN_KEY must be at least {MIN_ADMIN_KEY_LENGTH} random "
                f"characters, not a sample config's placeholder; make one with: {MAKE_A_KEY}"
            )
        return value

    @field_validator("temporal_tls_ca", "temporal_tls_cert", "temporal_tls_key")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        """A TLS file that cannot be read fails at start, naming the file."""
        if value is not None and not (value.is_file() and os.access(value, os.R_OK)):
            raise ValueError(f"{value} is not a readable file")
        return value

    @model_validator(mode="after")
    def _cert_with_key(self) -> "Settings":
        """A client certificate is useless without its key, and the other way round."""
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            raise ValueError(
                "OPENLINES_TEMPORAL_TLS_CERT and OPENLINES_TEMPORAL_TLS_KEY go together"
            )
        return self

    @field_validator("secret_key", mode="before")
    @classmethod
    def _empty_secret_key_is_none(cls, value: object) -> object:
        """An empty ``OPENLINES_SECRET_KEY=`` means no key, as leaving it out does."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("secret_key")
    @classmethod
    def _usable_secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        """Refuse anything Fernet would refuse now rather than at the first secret written."""
        if value is None:
            return None
        # Imported here: only installs with a key need the cryptography package loaded.
        from cryptography.fernet import Fernet

        try:
            Fernet(value.get_secret_value())
        except ValueError:
            raise ValueError(
                "OPENLINES_SECRET_KEY must be a Fernet key (32 url-safe base64-encoded bytes, "
                f"44 characters); make one with: {MAKE_A_SECRET_KEY}"
            ) from None
        return value

    @property
    def resolved_database_url(self) -> str:
        """The configured URL, or the SQLite file inside ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'openlines.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
