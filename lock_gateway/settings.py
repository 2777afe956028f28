"""The gateway's settings: environment variables prefixed HEALTHLOCK_GATEWAY_, overridable by CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lock_gateway.protocol.gateway_api import MAX_BATCH, MAX_LONG_POLL_MS

# Tokens that mean "nobody configured this": refused, so a gateway never runs on a shared default secret.
_PLACEHOLDER_TOKENS = frozenset({"changeme", "change-me", "token", "secret", "placeholder", "xxx"})


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEALTHLOCK_GATEWAY_", extra="ignore", frozen=True)

    backend_url: str = Field(default="http://127.0.0.1:8000", pattern=r"^https?://")
    token: SecretStr  # per-gateway bearer token issued at registration; required
    queue_path: Path = Path("gateway-queue.sqlite3")  # durable events/results queue (SQLite, WAL)
    ble_backend: Literal["system", "bumble"] = "system"  # "system": bleak's platform backend (BlueZ...)
    bumble_hci: str = "tcp-client:127.0.0.1:9100"  # bumble HCI transport spec, used when ble_backend=bumble
    # Long-poll wait: long enough to keep idle traffic low, short enough to notice a dead backend quickly.
    long_poll_ms: int = Field(default=25_000, ge=0, le=MAX_LONG_POLL_MS)
    # Presence granularity the backend needs for "gateway offline" alerts (it times out after ~3 beats).
    heartbeat_s: float = Field(default=15.0, gt=0)
    # Lock assignments change rarely (landlord pairing); 30 s keeps a new lock's wait short.
    lock_refresh_s: float = Field(default=30.0, gt=0)
    # Scan + connect + discovery + INFO read for one lock; establish_connection alone would allow 20 s/try.
    connect_budget_s: float = Field(default=8.0, gt=0)
    # How long one scan looks for a lock's address: several advertising intervals of a slow lock (1 s).
    scan_timeout_s: float = Field(default=4.0, gt=0)
    # One GATT read/write round trip; a healthy link answers in milliseconds (spike p95: 2 ms).
    gatt_op_timeout_s: float = Field(default=4.0, gt=0)
    # Ordinary (non-long-poll) HTTP requests: generous for a loaded backend, short enough to retry.
    http_timeout_s: float = Field(default=10.0, gt=0)
    # Events or results per upload: bounded by the contract's MAX_BATCH.
    upload_batch_max: int = Field(default=200, ge=1, le=MAX_BATCH)
    # Ceiling of every retry backoff (backend down, lock gone): bounds the delay once things recover.
    retry_cap_s: float = Field(default=30.0, gt=0)
    log_format: Literal["console", "json"] = "console"
    log_level: str = "INFO"

    @field_validator("token")
    @classmethod
    def _refuse_empty_or_placeholder(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value().strip()
        if not secret:
            raise ValueError("HEALTHLOCK_GATEWAY_TOKEN is empty: set the token issued for this gateway")
        if secret.lower() in _PLACEHOLDER_TOKENS:
            raise ValueError("HEALTHLOCK_GATEWAY_TOKEN is a placeholder: set this gateway's own token")
        return value

    @field_validator("backend_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")
