"""Backend settings: one pydantic-settings class, env prefix HEALTHLOCK_."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRET = "dev-only-change-me"  # noqa: S105 - the marker we refuse outside development
MIN_SECRET_LEN = 16  # shorter keys make the keyed digests of ID numbers and codes guessable


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEALTHLOCK_", extra="ignore")

    environment: Literal["development", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///var/healthlock.db"
    # Keys the digests of ID numbers and health codes so a leaked table cannot be reversed by brute force.
    secret_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)

    health_authority_url: str = "http://127.0.0.1:8701/authority/v1"
    health_authority_api_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    health_authority_timeout_s: float = Field(default=2.0, gt=0)  # the tenant is waiting at the door
    # When the authority is down, a colour seen this recently still decides (DESIGN: "last known if recent").
    health_status_max_age_s: int = Field(default=12 * 3600, ge=0)

    sms_provider_url: str | None = None  # None: console delivery only
    sms_api_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)

    command_ttl_s: int = Field(default=30, gt=0)  # enough for a reconnect; a stale unlock is useless
    unlock_wait_s: float = Field(default=5.0, ge=0, le=10)  # POST /unlocks waits this long for the lock
    session_ttl_s: int = Field(default=12 * 3600, gt=0)
    delivery_poll_s: float = Field(default=0.25, gt=0)
    run_delivery_worker: bool = True

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> Settings:
        if self.environment == "production":
            for name in ("secret_key", "health_authority_api_key", "sms_api_key"):
                value = getattr(self, name).get_secret_value()
                if value == PLACEHOLDER_SECRET or len(value) < MIN_SECRET_LEN:
                    raise ValueError(f"HEALTHLOCK_{name.upper()} must be set to a real secret of at least "
                                     f"{MIN_SECRET_LEN} characters in production")
        return self

    @property
    def async_database_url(self) -> str:
        return async_url(self.database_url)


def async_url(url: str) -> str:
    """Accept the URLs people write (postgresql://, sqlite:///) and pick the async drivers."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url
