"""The backend's error base and the one handler that renders every error as {"error", "detail"}.

HealthLockError
 ├── NotFound (404)          the thing named does not exist or is not yours to see
 ├── Unauthorized (401)      no or bad credentials
 ├── Forbidden (403)         signed in, not allowed
 └── InvalidRequest (422)    well-formed, but a value no honest client sends
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class HealthLockError(Exception):
    code = "error"
    status = 400

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class NotFound(HealthLockError):
    code, status = "not_found", 404


class Unauthorized(HealthLockError):
    code, status = "unauthorized", 401


class Forbidden(HealthLockError):
    code, status = "forbidden", 403


class InvalidRequest(HealthLockError):
    code, status = "invalid_request", 422



def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if part not in ("body", "query", "path"))


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HealthLockError)
    async def _domain(_request: Request, exc: HealthLockError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"error": exc.code, "detail": exc.detail}, status_code=exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # The framework's own errors (no such route, wrong method) get the same shape as ours.
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": code, "detail": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"field": _field(tuple(e.get("loc", ()))), "problem": e.get("msg", "")} for e in exc.errors()]
        summary = "; ".join(f"{p['field'] or 'body'}: {p['problem']}" for p in problems)
        return JSONResponse({"error": "invalid_request", "detail": summary, "problems": problems}, status_code=422)
