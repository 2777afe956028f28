"""The one error the simulator's HTTP API raises; rendered as `{"error": code, "detail": ...}`."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A refusal with a stable machine-readable code and an HTTP status (always 4xx or 503)."""

    def __init__(self, status: int, code: str, detail: Any) -> None:
        super().__init__(f"{code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
