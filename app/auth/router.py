"""Sign-in for every person-facing audience."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from app.auth.dependencies import ClockDep
from app.auth.secrets import new_token, token_digest, verify_password
from app.db import SessionDep
from app.errors import Unauthorized
from models import User, UserSession

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(min_length=5, max_length=32)
    password: str = Field(min_length=1, max_length=200)


class LoginResponse(BaseModel):
    token: str
    user_id: uuid.UUID
    role: str
    expires_at: dt.datetime


@router.post("/login")
async def login(body: LoginRequest, request: Request, session: SessionDep, clock: ClockDep) -> LoginResponse:
    user = (await session.execute(select(User).where(User.phone == body.phone))).scalar_one_or_none()
    # scrypt is CPU-bound: keep it off the event loop.
    ok = user is not None and await asyncio.to_thread(verify_password, body.password, user.password_hash)
    if user is None or not ok:
        raise Unauthorized("phone or password is wrong", code="invalid_credentials")
    now = clock.now()
    token = new_token("hl")
    expires_at = now + dt.timedelta(seconds=request.app.state.settings.session_ttl_s)
    session.add(UserSession(token_digest=token_digest(token), user_id=user.id, created_at=now, expires_at=expires_at))
    await session.flush()
    return LoginResponse(token=token, user_id=user.id, role=user.role.value, expires_at=expires_at)
