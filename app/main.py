"""The backend application: create_app() plus a lifespan that owns every connection."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI

from alerts.delivery import DeliveryWorker
from alerts.raising import CONSOLE_CHANNEL, SMS_CHANNEL
from alerts.senders import ConsoleSender, HttpSmsSender, Sender
from app.auth.router import router as auth_router
from app.clock import Clock, SystemClock
from app.db import make_engine, make_session_factory
from app.errors import install_error_handlers
from app.gateway_link.router import router as gateway_router
from app.gateway_link.wakeups import GatewayWakeups
from app.health_codes.authority import HealthAuthorityClient
from app.locks.router import router as landlord_router
from app.police.router import router as police_router
from app.settings import Settings
from app.unlock.router import router as tenant_router
from app.unlock.service import UnlockServices

OUTBOUND_TIMEOUT = httpx.Timeout(5.0, connect=2.0)  # SMS and authority calls: fail fast, retry later


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()
    clock = clock or SystemClock()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.async_database_url)
        http = httpx.AsyncClient(timeout=OUTBOUND_TIMEOUT)
        app.state.session_factory = make_session_factory(engine)
        app.state.wakeups = GatewayWakeups()
        app.state.unlock_services = UnlockServices(
            authority=HealthAuthorityClient(http, settings.health_authority_url,
                                            settings.health_authority_api_key.get_secret_value(),
                                            settings.health_authority_timeout_s),
            wakeups=app.state.wakeups,
            secret_key=settings.secret_key.get_secret_value(),
            health_max_age=dt.timedelta(seconds=settings.health_status_max_age_s),
            command_ttl=dt.timedelta(seconds=settings.command_ttl_s),
        )
        senders: dict[str, Sender] = {CONSOLE_CHANNEL: ConsoleSender()}
        if settings.sms_provider_url:
            senders[SMS_CHANNEL] = HttpSmsSender(
                http, settings.sms_provider_url, settings.sms_api_key.get_secret_value()
            )
        worker = DeliveryWorker(app.state.session_factory, senders, clock.now, settings.delivery_poll_s)
        task = asyncio.create_task(worker.run(), name="alert-delivery") if settings.run_delivery_worker else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await http.aclose()
            await engine.dispose()

    app = FastAPI(title="HealthLock", version="0.1.0", lifespan=lifespan)
    app.state.settings, app.state.clock = settings, clock
    install_error_handlers(app)
    for router in (auth_router, tenant_router, landlord_router, police_router, gateway_router):
        app.include_router(router)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
