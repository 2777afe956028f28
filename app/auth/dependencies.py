"""Who is calling: a signed-in person of some role, or a gateway."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select

from app.auth.secrets import token_digest
from app.clock import Clock
from app.db import SessionDep
from app.errors import Forbidden, Unauthorized
from models import Gateway, User, UserSession
from models.people import Role


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send 'Authorization: Bearer <token>'; sign in at POST /api/v1/auth/login")
    return token.strip()


def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


ClockDep = Annotated[Clock, Depends(get_clock)]


async def current_user(request: Request, session: SessionDep, clock: ClockDep) -> User:
    digest = token_digest(_bearer(request))
    row = (
        await session.execute(
            select(User, UserSession.expires_at)
            .join(UserSession, UserSession.user_id == User.id)
            .where(UserSession.token_digest == digest)
        )
    ).first()
    if row is None:
        raise Unauthorized("unknown or revoked token; sign in again")
    user, expires_at = row
    if expires_at <= clock.now():
        raise Unauthorized("token expired; sign in again")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def _require(role: Role) -> object:
    async def dependency(user: CurrentUser) -> User:
        if user.role != role:
            raise Forbidden(f"this endpoint is for the {role.value} role; you are signed in as {user.role.value}")
        return user

    return Depends(dependency)


CurrentTenant = Annotated[User, _require(Role.TENANT)]
CurrentLandlord = Annotated[User, _require(Role.LANDLORD)]
CurrentPolice = Annotated[User, _require(Role.POLICE)]


async def gateway_identity(request: Request, session: SessionDep) -> Gateway:
    digest = token_digest(_bearer(request))
    gateway = (await session.execute(select(Gateway).where(Gateway.token_digest == digest))).scalar_one_or_none()
    if gateway is None:
        raise Unauthorized("unknown gateway token")
    return gateway


GatewayIdentity = Annotated[Gateway, Depends(gateway_identity)]
