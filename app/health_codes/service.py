"""Turn a submitted health code into evidence for the policy, keeping every colour change with its source."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.secrets import keyed_digest
from app.health_codes.authority import AuthorityUnavailable, HealthAuthorityClient
from app.unlock.policy import HealthEvidence, HealthStatus
from models import HealthCodeStatus, User


async def assess_health_code(
    session: AsyncSession,
    authority: HealthAuthorityClient,
    person: User,
    code: str | None,
    *,
    now: dt.datetime,
    secret_key: str,
    max_age: dt.timedelta,
) -> HealthEvidence:
    if code is None or not code.strip():
        return HealthEvidence(HealthStatus.NONE_SUBMITTED)
    try:
        answer = await authority.lookup(code.strip())
    except AuthorityUnavailable:
        last = await _last_status(session, person)
        if last is not None and now - last.observed_at <= max_age:
            return HealthEvidence(HealthStatus.UNREACHABLE_RECENT, last.colour)
        return HealthEvidence(HealthStatus.UNREACHABLE_STALE)
    if answer.colour is None:
        return HealthEvidence(HealthStatus.UNKNOWN_CODE)
    # Only the authority sets a colour; every observation is kept with where it came from.
    session.add(
        HealthCodeStatus(
            person_id=person.id,
            code_digest=keyed_digest(secret_key, code),
            colour=answer.colour,
            source=authority.source,
            observed_at=now,
        )
    )
    return HealthEvidence(HealthStatus.KNOWN, answer.colour)


async def _last_status(session: AsyncSession, person: User) -> HealthCodeStatus | None:
    return (
        await session.execute(
            select(HealthCodeStatus)
            .where(HealthCodeStatus.person_id == person.id)
            .order_by(HealthCodeStatus.observed_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
