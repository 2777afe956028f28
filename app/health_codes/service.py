"""Turn a submitted health code into evidence for the policy, keeping every colour seen with its source.

Two steps on purpose: the authority is asked with no database transaction open (a slow authority
must not hold a connection or, on SQLite, the write lock), then the answer is recorded.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.secrets import id_number_digest, keyed_digest
from app.health_codes.authority import AuthorityAnswer, AuthorityUnavailable, HealthAuthorityClient
from app.unlock.policy import HealthEvidence, HealthStatus
from models import HealthCodeStatus, User


@dataclass(frozen=True)
class AuthorityReply:
    code: str | None  # as submitted, stripped; None when nothing was submitted
    answer: AuthorityAnswer | None  # None: not asked, or the authority could not answer
    source: str


async def ask_authority(authority: HealthAuthorityClient, code: str | None) -> AuthorityReply:
    code = code.strip() if code and code.strip() else None
    if code is None:
        return AuthorityReply(None, None, authority.source)
    try:
        return AuthorityReply(code, await authority.lookup(code), authority.source)
    except AuthorityUnavailable:
        return AuthorityReply(code, None, authority.source)


async def record_health_evidence(
    session: AsyncSession, person: User, reply: AuthorityReply, *, now: dt.datetime, secret_key: str,
    max_age: dt.timedelta,
) -> HealthEvidence:
    if reply.code is None:
        return HealthEvidence(HealthStatus.NONE_SUBMITTED)
    code_digest = keyed_digest(secret_key, reply.code)
    if reply.answer is None:
        last = await _last_status(session, person)
        # Only a recent colour of this very code counts: any text must not borrow the person's record.
        if last is not None and last.code_digest == code_digest and now - last.observed_at <= max_age:
            return HealthEvidence(HealthStatus.UNREACHABLE_RECENT, last.colour)
        return HealthEvidence(HealthStatus.UNREACHABLE_STALE)
    if reply.answer.colour is None:
        return HealthEvidence(HealthStatus.UNKNOWN_CODE)
    holder = reply.answer.holder_id_number
    if holder is None or person.id_number_digest is None:
        return HealthEvidence(HealthStatus.HOLDER_UNKNOWN)  # cannot be tied to anyone: no accusation
    if id_number_digest(secret_key, holder) != person.id_number_digest:
        return HealthEvidence(HealthStatus.NOT_HOLDER)  # someone else's: its colour is not recorded for them
    # Only the authority sets a colour; every observation is kept with where it came from.
    session.add(HealthCodeStatus(person_id=person.id, code_digest=code_digest,
                                 colour=reply.answer.colour, source=reply.source, observed_at=now))
    return HealthEvidence(HealthStatus.KNOWN, reply.answer.colour)


async def _last_status(session: AsyncSession, person: User) -> HealthCodeStatus | None:
    return (
        await session.execute(
            select(HealthCodeStatus)
            .where(HealthCodeStatus.person_id == person.id)
            .order_by(HealthCodeStatus.observed_at.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
