"""Write an audit entry in the caller's transaction."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from models import AuditEntry


def record_audit(
    session: AsyncSession,
    *,
    at: dt.datetime,
    actor_type: str,
    actor_id: uuid.UUID | None,
    action: str,
    subject_type: str,
    subject_id: object,
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEntry(
            at=at, actor_type=actor_type, actor_id=actor_id, action=action, subject_type=subject_type,
            subject_id=str(subject_id), detail=detail or {},
        )
    )
