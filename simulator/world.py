"""The simulated world: which locks exist, their factory keys, and the fake services' credentials.

The backend's seed step writes this JSON file; `python -m simulator --world PATH` reads it.

    {
      "locks": [
        {
          "lock_id": "<uuid>",
          "key_hex": "<64 hex chars: the lock's 32-byte key as provisioned at the factory>",
          "label": "101",            # free text shown to testers
          "battery_pct": 90,         # 0..100, optional (default 90)
          "clock_offset_ms": 0       # the lock's clock minus real time, optional (default 0)
        }
      ],
      "health_codes": [{"code": "<string>", "colour": "green|yellow|red", "holder_id_number": "<ID>"}],
      "authority_api_key": "<string>",   # X-Api-Key the fake health-code authority expects
      "sms_api_key": "<string>"          # Bearer token the fake SMS provider expects
    }

Each lock's BLE address and advertised name are derived from its id by the protocol module
(`lock_frames.ble_address_for`, `lock_frames.advertised_name`), so they are not in the file.
Unknown fields are refused: a typo in a seed must not silently become a default.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lock_gateway.protocol.lock_frames import LOCK_KEY_LEN

DEFAULT_BATTERY_PCT = 90  # a freshly installed lock: well above any low-battery threshold


class Colour(StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LockSpec(_Strict):
    lock_id: uuid.UUID
    key_hex: Annotated[str, Field(repr=False)]  # never shown in reprs or logs
    label: str = ""
    battery_pct: Annotated[int, Field(ge=0, le=100)] = DEFAULT_BATTERY_PCT
    clock_offset_ms: int = 0

    @field_validator("key_hex")
    @classmethod
    def _key_is_32_bytes_of_hex(cls, value: str) -> str:
        try:
            raw = bytes.fromhex(value)
        except ValueError as exc:
            raise ValueError("key_hex is not hexadecimal") from exc
        if len(raw) != LOCK_KEY_LEN:
            raise ValueError(f"key_hex must encode {LOCK_KEY_LEN} bytes, got {len(raw)}")
        return value

    @property
    def key(self) -> bytes:
        return bytes.fromhex(self.key_hex)


class HealthCodeSpec(_Strict):
    code: Annotated[str, Field(min_length=1)]
    colour: Colour
    # The holder's ID-card number: the authority says whose code it is, so a borrowed code is caught.
    holder_id_number: Annotated[str | None, Field(min_length=6, max_length=32, repr=False)] = None


class World(_Strict):
    locks: list[LockSpec]
    health_codes: list[HealthCodeSpec] = []
    authority_api_key: Annotated[str, Field(min_length=1, repr=False)]
    sms_api_key: Annotated[str, Field(min_length=1, repr=False)]

    @model_validator(mode="after")
    def _lock_ids_are_unique(self) -> World:
        ids = [lock.lock_id for lock in self.locks]
        if len(ids) != len(set(ids)):
            raise ValueError("lock_id values must be unique")
        return self


class WorldFileError(ValueError):
    """The world file cannot be used. The message names fields, never their values (keys are secret)."""


def load_world(path: Path) -> World:
    try:
        return World.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(file)'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise WorldFileError(f"world file {path} is invalid: {problems}") from None
