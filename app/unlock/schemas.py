"""What tenants send and see for a cloud unlock."""

from __future__ import annotations

import datetime as dt
import uuid

from pydantic import BaseModel, ConfigDict, Field

from app.unlock.transitions import OUTCOME_REASON
from models import UnlockAttempt


class UnlockRequest(BaseModel):
    # A misspelt field (healthCode) must not silently become "no code submitted" and an SMS to police.
    model_config = ConfigDict(extra="forbid")

    lock_id: uuid.UUID
    health_code: str | None = Field(default=None, max_length=64, description="the code shown in the health app")


class AttemptView(BaseModel):
    attempt_id: uuid.UUID
    lock_id: uuid.UUID
    state: str
    granted: bool
    reason_code: str
    reason: str  # what the tenant should read now: the outcome if the door did not simply open
    decision_reason: str  # the policy's decision in words
    health_colour: str | None
    requested_at: dt.datetime
    updated_at: dt.datetime
    final: bool  # no further change will come: stop polling

    @classmethod
    def of(cls, attempt: UnlockAttempt, final: bool) -> AttemptView:
        return cls(
            attempt_id=attempt.id,
            lock_id=attempt.lock_id,
            state=attempt.state.value,
            granted=attempt.granted,
            reason_code=attempt.reason_code,
            reason=OUTCOME_REASON.get(attempt.state, attempt.reason),
            decision_reason=attempt.reason,
            health_colour=attempt.health_colour,
            requested_at=attempt.requested_at,
            updated_at=attempt.updated_at,
            final=final,
        )


class RoomView(BaseModel):
    unit_id: uuid.UUID
    address: str
    lock_ids: list[uuid.UUID]
    tenancy_ends_at: dt.datetime | None
