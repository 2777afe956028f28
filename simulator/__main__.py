"""`python -m simulator`: virtual locks on an emulated radio, the gateway's HCI dongle, and the fake services.

    python -m simulator --world PATH --hci-port N --http-port M
                        [--adv-interval-ms 40] [--state-dir DIR] [--host 127.0.0.1]

Once the locks advertise, the HCI port and the HTTP port listen, it prints exactly one line to stdout:
    simulator ready http=http://127.0.0.1:M hci=tcp-server:127.0.0.1:N locks=K
Logs go to stderr (level from HEALTHLOCK_SIM_LOG_LEVEL, default INFO). SIGTERM or SIGINT stop it cleanly.
bumble, the HCI server and uvicorn share one asyncio loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from bumble.link import LocalLink

from simulator.attacker import Attacker
from simulator.authority import HealthAuthority
from simulator.control_api import create_app
from simulator.counter_store import CounterStore
from simulator.radio import HciTcpServer, RadioController
from simulator.sms_provider import SmsProvider
from simulator.virtual_lock import HCI_STEP_TIMEOUT_S, VirtualLock
from simulator.world import load_world

log = logging.getLogger("simulator")

DEFAULT_ADV_INTERVAL_MS = 40.0  # fast enough that a gateway finds a lock in tens of milliseconds
HTTP_START_TIMEOUT_S = 10.0  # uvicorn binds and runs the lifespan; more means something is wrong
SHUTDOWN_TIMEOUT_S = 5.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=Path, required=True, help="world JSON written by the seed step")
    parser.add_argument("--hci-port", type=int, required=True, help="TCP port serving the gateway's dongle")
    parser.add_argument("--http-port", type=int, required=True, help="port of the knobs and fake services")
    parser.add_argument("--adv-interval-ms", type=float, default=DEFAULT_ADV_INTERVAL_MS)
    parser.add_argument("--state-dir", type=Path, default=None, help="default: the world file's directory")
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address")
    args = parser.parse_args(argv)
    if not ipaddress.ip_address(args.host).is_loopback:
        parser.error("--host must be a loopback address: the simulator has no authentication")
    if not 20 <= args.adv_interval_ms <= 10_240:
        parser.error("--adv-interval-ms must be within 20..10240 (the BLE advertising interval range)")
    return args


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside our loop: signals are ours, not uvicorn's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP. With proto 0,
    # Nagle held every response's second write for the client's delayed ACK: 44 ms per request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


async def run(args: argparse.Namespace) -> None:
    world = load_world(args.world)
    store = CounterStore(args.state_dir or args.world.resolve().parent)
    link = LocalLink()  # type: ignore[no-untyped-call]  # the air all locks share
    locks = {spec.lock_id: VirtualLock(spec, link, store, args.adv_interval_ms) for spec in world.locks}
    attacker = Attacker(link)
    dongle = RadioController("dongle", link=link)
    hci_server = HciTcpServer(dongle)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    await asyncio.wait_for(
        asyncio.gather(*(lock.start() for lock in locks.values()), attacker.start()),
        HCI_STEP_TIMEOUT_S * 2,
    )
    await hci_server.start(args.host, args.hci_port)
    http_socket = _bind(args.host, args.http_port)  # a busy port fails here, as a clear OSError
    app = create_app(locks, attacker, HealthAuthority(world), SmsProvider(world.sms_api_key))
    server = _EmbeddedServer(uvicorn.Config(
        app, host=args.host, port=args.http_port, log_level="warning", access_log=False, lifespan="off",
    ))
    http_task = asyncio.create_task(server.serve(sockets=[http_socket]))
    try:
        async with asyncio.timeout(HTTP_START_TIMEOUT_S):
            while not server.started:
                if http_task.done():
                    raise RuntimeError(f"HTTP server did not start on {args.host}:{args.http_port}")
                await asyncio.sleep(0.02)
        # The ready line is the parent process's start signal, not a log line: stdout, flushed.
        sys.stdout.write(
            f"simulator ready http=http://{args.host}:{args.http_port} "
            f"hci=tcp-server:{args.host}:{args.hci_port} locks={len(locks)}\n"
        )
        sys.stdout.flush()
        stop_task = asyncio.create_task(stop.wait())
        await asyncio.wait({stop_task, http_task}, return_when=asyncio.FIRST_COMPLETED)
        stop_task.cancel()
    finally:
        log.info("stopping")
        server.should_exit = True
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(http_task, SHUTDOWN_TIMEOUT_S)
        with contextlib.suppress(Exception):
            await hci_server.close()
        for lock in locks.values():
            await lock.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=os.environ.get("HEALTHLOCK_SIM_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # bumble logs every unexpected packet at WARNING; keep our stderr readable.
    logging.getLogger("bumble").setLevel(logging.ERROR)
    try:
        asyncio.run(run(args))
    except (OSError, RuntimeError, TimeoutError, ValueError) as exc:
        log.error("simulator failed: %s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
