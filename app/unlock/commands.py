"""Sign an unlock command for a lock: the only place a lock key is used to open a door."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from app.clock import to_ms
from lock_gateway.protocol.lock_frames import Action, CommandFrame
from models import Lock, LockCommand, UnlockAttempt


async def issue_unlock_command(
    session: AsyncSession, lock: Lock, attempt: UnlockAttempt, now: dt.datetime, ttl: dt.timedelta
) -> LockCommand:
    # Atomic increment in the database: replicas signing for the same lock never reuse a counter.
    counter = (
        await session.execute(
            update(Lock)
            .where(Lock.id == lock.id)
            .values(command_counter=Lock.command_counter + 1)
            .returning(Lock.command_counter)
        )
    ).scalar_one()
    expires_at = now + ttl
    command_id = uuid.uuid4()
    frame = CommandFrame(
        lock_id=lock.id,
        command_id=command_id,
        counter=counter,
        # The lock judges expiry by its own clock: shift by the drift measured at the last contact.
        expires_at_ms=to_ms(expires_at) + lock.clock_offset_ms,
        action=Action.UNLOCK,
    ).signed(lock.key)
    command = LockCommand(
        id=command_id,
        attempt_id=attempt.id,
        lock_id=lock.id,
        gateway_id=lock.gateway_id,
        counter=counter,
        frame=frame.encode(),
        created_at=now,
        expires_at=expires_at,
    )
    session.add(command)
    await session.flush()
    return command
