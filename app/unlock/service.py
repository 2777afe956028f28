"""Cloud unlock: facts -> policy -> decision, alerts and signed command in one transaction."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from alerts.masking import mask_name
from alerts.raising import AlertRequest, raise_alert
from app.audit import record_audit
from app.db import after_commit
from app.errors import NotFound
from app.gateway_link.wakeups import GatewayWakeups
from app.health_codes.authority import HealthAuthorityClient
from app.health_codes.service import AuthorityReply, ask_authority, record_health_evidence
from app.locks.place import place_of_lock
from app.unlock.commands import issue_unlock_command
from app.unlock.policy import NO_TENANCY, AlertSpec, HealthEvidence, HealthStatus, JurisdictionPolicy, decide
from app.unlock.transitions import expire_overdue
from models import Lock, Tenancy, UnlockAttempt, User
from models.alerts import AlertKind, Severity
from models.unlock import TERMINAL_STATES, AttemptState

FOREIGN_DOOR_WINDOW = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class UnlockServices:
    authority: HealthAuthorityClient
    wakeups: GatewayWakeups
    secret_key: str
    health_max_age: dt.timedelta
    command_ttl: dt.timedelta


async def request_unlock(
    session: AsyncSession, services: UnlockServices, tenant: User, lock_id: uuid.UUID,
    health_code: str | None, now: dt.datetime,
) -> UnlockAttempt:
    lock = await session.get(Lock, lock_id)
    if lock is None:
        raise NotFound(f"no lock with id {lock_id}", code="lock_not_found")
    place, town = await place_of_lock(session, lock)
    has_tenancy = await _has_active_tenancy(session, tenant.id, lock.unit_id, now)
    # Nothing is written yet: end the read transaction so no connection (nor SQLite's write lock)
    # is held while the health authority answers.
    await session.commit()
    reply = AuthorityReply(None, None, services.authority.source)
    if has_tenancy and town.gating_enabled:  # the authority is asked only when the answer matters
        reply = await ask_authority(services.authority, health_code)
    health = HealthEvidence(HealthStatus.NONE_SUBMITTED)
    if has_tenancy and town.gating_enabled:
        health = await record_health_evidence(session, tenant, reply, now=now, secret_key=services.secret_key,
                                              max_age=services.health_max_age)
    policy = JurisdictionPolicy.for_town(town.policy_overrides)
    decision = decide(has_tenancy, town.gating_enabled, health, policy)
    attempt = UnlockAttempt(
        id=uuid.uuid4(), tenant_id=tenant.id, lock_id=lock.id,
        state=AttemptState.PENDING if decision.grant else AttemptState.DENIED,
        granted=decision.grant, reason_code=decision.reason_code, reason=decision.reason,
        health_colour=health.colour.value if health.colour else None, requested_at=now, updated_at=now,
    )
    session.add(attempt)
    await session.flush()
    if decision.grant:
        await issue_unlock_command(session, lock, attempt, now, services.command_ttl)
        gateway_id = lock.gateway_id
        after_commit(session, lambda: services.wakeups.wake(gateway_id))
    alerts = list(decision.alerts)
    if decision is NO_TENANCY:
        record_audit(session, at=now, actor_type="user", actor_id=tenant.id, action="unlock_denied_no_tenancy",
                     subject_type="lock", subject_id=lock.id, detail={"attempt_id": str(attempt.id)})
        if await _recent_foreign_tries(session, tenant.id, now) >= policy.foreign_door_tries_before_alert:
            alerts.append(AlertSpec(AlertKind.REPEATED_FOREIGN_DOOR, Severity.WARNING))
    for spec in alerts:
        await raise_alert(session, AlertRequest(
            kind=spec.kind, severity=spec.severity, subject_masked=mask_name(tenant.family_name),
            subject_user_id=tenant.id, place=place, occurred_at=now,
            dedupe_key=f"{spec.kind.value}:{tenant.id}:{lock.id}",
        ), now)
    return attempt


async def _has_active_tenancy(session: AsyncSession, tenant_id: uuid.UUID, unit_id: uuid.UUID,
                              now: dt.datetime) -> bool:
    found = await session.execute(
        select(Tenancy.id).where(
            Tenancy.tenant_id == tenant_id, Tenancy.unit_id == unit_id, Tenancy.starts_at <= now,
            or_(Tenancy.ends_at.is_(None), Tenancy.ends_at > now),
        ).limit(1)
    )
    return found.first() is not None


async def _recent_foreign_tries(session: AsyncSession, tenant_id: uuid.UUID, now: dt.datetime) -> int:
    count = await session.scalar(
        select(func.count()).select_from(UnlockAttempt).where(
            UnlockAttempt.tenant_id == tenant_id,
            UnlockAttempt.reason_code == NO_TENANCY.reason_code,
            UnlockAttempt.requested_at >= now - FOREIGN_DOOR_WINDOW,
        )
    )
    return int(count or 0)


async def load_attempt(session: AsyncSession, tenant: User, attempt_id: uuid.UUID, now: dt.datetime) -> UnlockAttempt:
    """The attempt as it stands, with an undelivered command past its expiry marked expired."""
    await expire_overdue(session, now, attempt_id=attempt_id, tenant_id=tenant.id)
    attempt = (
        await session.execute(
            select(UnlockAttempt).where(UnlockAttempt.id == attempt_id).execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()
    if attempt is None or attempt.tenant_id != tenant.id:
        raise NotFound(f"no unlock attempt {attempt_id} of yours", code="attempt_not_found")
    return attempt


# An answer lost after the write stays "unknown"; with no lock record this long after, nothing more will
# be learnt on the phone's time scale: the attempt is final (a later lock record still confirms it).
UNKNOWN_SETTLE = dt.timedelta(seconds=60)


def is_final(attempt: UnlockAttempt, now: dt.datetime) -> bool:
    if attempt.state is AttemptState.UNKNOWN:
        return now - attempt.updated_at >= UNKNOWN_SETTLE
    return attempt.state in TERMINAL_STATES
