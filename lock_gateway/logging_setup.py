"""structlog for the gateway: JSON in production, readable in development, always on stderr.

stdout is kept for the one `gateway ready` line that supervisors and tests wait for.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog


def configure_logging(log_format: Literal["console", "json"], level: str) -> None:
    level_no = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    # Libraries (bumble, bleak, httpx) log through stdlib logging: warnings and above only.
    logging.basicConfig(stream=sys.stderr, level=max(level_no, logging.WARNING),
                        format="%(name)s %(message)s")
    renderer: structlog.typing.Processor
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
