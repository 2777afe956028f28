"""`healthlock` command: demo, serve, migrate, bench."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from app.settings import Settings

DEMO_DIR = Path("var/demo")
DEMO_ONCE_DIR = Path("var/demo-once")


def _demo(args: argparse.Namespace) -> int:
    from app.demo import DemoStack

    stack = DemoStack(Path(args.workdir or (DEMO_ONCE_DIR if args.once else DEMO_DIR)))
    sys.stdout.write("Starting HealthLock: migrating and seeding SQLite, then simulator, backend and gateway...\n")
    sys.stdout.flush()
    with stack:
        sys.stdout.write(f"  backend   {stack.backend_url}  (API docs: {stack.backend_url}/docs)\n"
                         f"  simulator {stack.simulator_url}  (locks: /locks, police SMS: /sms/v1/messages)\n"
                         f"  logs      {stack.workdir / 'logs'}\n\nPlaying the seed scenarios...\n\n")
        sys.stdout.flush()
        played = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "simulator.scenario_player",
             "--manifest", str(stack.workdir / "demo-manifest.json")],
            check=False, stdin=subprocess.DEVNULL,
        )
        if args.once:
            return played.returncode
        sys.stdout.write(
            f"\nThe system keeps running. Sign in as a tenant, e.g.\n"
            f"  curl -s -X POST {stack.backend_url}/api/v1/auth/login -H 'content-type: application/json' "
            f"-d '{{\"phone\": \"13700000001\", \"password\": \"healthlock-demo\"}}'\n"
            f"Demo phones and codes: {stack.workdir / 'demo-manifest.json'}\nCtrl-C stops everything.\n"
        )
        sys.stdout.flush()
        _wait_for_interrupt()
    return 0


def _wait_for_interrupt() -> None:
    stop = False

    def _stop(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    while not stop:
        time.sleep(0.5)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    if args.migrate:
        _migrate(args)
    uvicorn.run("app.main:create_app", factory=True, host=args.host, port=args.port, log_level="info")
    return 0


def _migrate(_args: argparse.Namespace) -> int:
    from models.migrate import upgrade_to_head

    settings = Settings()
    if settings.database_url.startswith("sqlite"):
        db_file = settings.database_url.split("///", 1)[-1]
        if db_file and not db_file.startswith(":memory:"):
            Path(db_file).parent.mkdir(parents=True, exist_ok=True)
    upgrade_to_head(settings.async_database_url)
    sys.stdout.write("database is at the newest schema\n")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from app.bench import run_bench

    return run_bench(Path(args.workdir), args.requests, args.concurrency)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="healthlock", description="HealthLock health-code door-lock service")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run backend, gateway and simulated locks; play the seed scenarios")
    demo.add_argument("--once", action="store_true",
                      help="play the scenarios, print the table and exit (0 = all matched)")
    demo.add_argument("--workdir", default=None,
                      help=f"where the database, manifest and logs go (default {DEMO_DIR}, or {DEMO_ONCE_DIR} "
                           "with --once, so a check never wipes a running demo)")
    demo.set_defaults(func=_demo)
    serve = commands.add_parser("serve", help="run the backend (settings from HEALTHLOCK_* variables)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    serve.add_argument("--migrate", action="store_true", help="upgrade the database first")
    serve.set_defaults(func=_serve)
    migrate = commands.add_parser("migrate", help="upgrade the database to the newest schema")
    migrate.set_defaults(func=_migrate)
    bench = commands.add_parser("bench", help="measure unlock decisions per second against a trivial endpoint")
    bench.add_argument("--workdir", default="var/bench")
    bench.add_argument("--requests", type=int, default=2000)
    bench.add_argument("--concurrency", type=int, default=16)
    bench.set_defaults(func=_bench)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
