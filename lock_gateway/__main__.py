"""`python -m lock_gateway`: run the BLE gateway until SIGTERM/SIGINT.

Settings come from HEALTHLOCK_GATEWAY_* environment variables; the flags below override them.
The token is deliberately not a flag (it would show in the process list).
Exit codes: 0 stopped by a signal, 2 bad settings, 3 the backend refused the token.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

import structlog
from pydantic import ValidationError

from lock_gateway.errors import BackendAuthRejected
from lock_gateway.logging_setup import configure_logging
from lock_gateway.service import GatewayService
from lock_gateway.settings import GatewaySettings

log = structlog.get_logger("lock_gateway")

EXIT_BAD_SETTINGS = 2
EXIT_TOKEN_REFUSED = 3
READY_LINE = "gateway ready"


def parse_overrides(argv: list[str] | None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m lock_gateway", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend-url", help="HEALTHLOCK_GATEWAY_BACKEND_URL")
    parser.add_argument("--queue-path", help="HEALTHLOCK_GATEWAY_QUEUE_PATH (SQLite file)")
    parser.add_argument("--ble-backend", choices=["system", "bumble"], help="HEALTHLOCK_GATEWAY_BLE_BACKEND")
    parser.add_argument("--bumble-hci", help="HEALTHLOCK_GATEWAY_BUMBLE_HCI, e.g. tcp-client:127.0.0.1:9100")
    parser.add_argument("--long-poll-ms", type=int, help="HEALTHLOCK_GATEWAY_LONG_POLL_MS")
    parser.add_argument("--heartbeat-s", type=float, help="HEALTHLOCK_GATEWAY_HEARTBEAT_S")
    parser.add_argument("--log-format", choices=["console", "json"], help="HEALTHLOCK_GATEWAY_LOG_FORMAT")
    parser.add_argument("--log-level", help="HEALTHLOCK_GATEWAY_LOG_LEVEL")
    args = parser.parse_args(argv)
    return {key: value for key, value in vars(args).items() if value is not None}


async def serve(settings: GatewaySettings) -> int:
    service = GatewayService(settings)
    main_task = asyncio.current_task()
    assert main_task is not None  # noqa: S101 - always inside asyncio.run
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, main_task.cancel)

    def announce_ready() -> None:
        sys.stdout.write(f"{READY_LINE} locks={len(service.links)} ble={settings.ble_backend}\n")
        sys.stdout.flush()

    try:
        await service.run(announce_ready)
    except asyncio.CancelledError:
        log.info("gateway_signalled_to_stop")
        return 0
    except BaseExceptionGroup as group:
        refused = group.subgroup(BackendAuthRejected)
        if refused is None:
            raise
        log.critical("gateway_token_refused_stopping", detail=str(refused.exceptions[0]),
                     action="check HEALTHLOCK_GATEWAY_TOKEN against the gateway registered by the landlord")
        return EXIT_TOKEN_REFUSED
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        settings = GatewaySettings(**parse_overrides(argv))
    except ValidationError as exc:
        configure_logging("console", "INFO")
        log.critical("gateway_settings_invalid", errors=[
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        ])
        return EXIT_BAD_SETTINGS
    configure_logging(settings.log_format, settings.log_level)
    return asyncio.run(serve(settings))


if __name__ == "__main__":
    sys.exit(main())
