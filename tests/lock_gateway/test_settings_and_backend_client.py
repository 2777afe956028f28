"""Settings refuse a missing token; the backend client sorts failures into transient, fatal and refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from lock_gateway.backend_client import BackendClient
from lock_gateway.durable_queue import DurableQueue
from lock_gateway.errors import BackendAuthRejected, BackendRefusedBatch, BackendUnavailable
from lock_gateway.event_forwarder import event_sender
from lock_gateway.protocol.gateway_api import UploadedEvent, encode_frame
from lock_gateway.settings import GatewaySettings
from tests.lock_gateway.conftest import REPO_ROOT

NOW_MS = 1_800_000_000_000


class _FixedClock:
    def now_ms(self) -> int:
        return NOW_MS


@pytest.mark.parametrize("token", ["", "   ", "changeme"])
def test_empty_or_placeholder_token_is_refused(token: str) -> None:
    with pytest.raises(ValidationError, match="TOKEN"):
        GatewaySettings(token=token)


def test_entry_point_exits_with_a_clear_error_without_a_token(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "lock_gateway"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "token" in done.stderr.lower()


def _client(status: int) -> BackendClient:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, json={"error": "x"}))
    return BackendClient("http://backend.test", "tok-123456", 5.0, transport=transport)


@pytest.mark.parametrize(
    ("status", "error"),
    [(503, BackendUnavailable), (429, BackendUnavailable), (401, BackendAuthRejected),
     (403, BackendAuthRejected), (422, BackendRefusedBatch)],
)
async def test_http_failures_are_classified(status: int, error: type[Exception]) -> None:
    client = _client(status)
    with pytest.raises(error):
        await client.fetch_locks()
    await client.aclose()


async def test_connect_error_is_transient() -> None:
    client = BackendClient("http://127.0.0.1:9", "tok-123456", 1.0)  # discard port: refused at once
    with pytest.raises(BackendUnavailable):
        await client.fetch_locks()
    await client.aclose()


async def test_an_event_batch_refused_with_422_goes_to_dead_letters(tmp_path: Path) -> None:
    queue = DurableQueue(tmp_path / "q.sqlite3")
    await queue.open()
    await queue.put_event(UploadedEvent(frame_b64=encode_frame(b"\x01"), received_at_ms=NOW_MS))
    client = _client(422)
    handled = await event_sender(client, queue, _FixedClock(), 10)()
    assert handled == 1
    assert await queue.count_events() == 0
    assert await queue.count_dead_letters() == 1
    await client.aclose()
    await queue.close()


async def test_an_event_batch_is_kept_while_the_backend_is_down(tmp_path: Path) -> None:
    queue = DurableQueue(tmp_path / "q.sqlite3")
    await queue.open()
    await queue.put_event(UploadedEvent(frame_b64=encode_frame(b"\x01"), received_at_ms=NOW_MS))
    client = _client(503)
    with pytest.raises(BackendUnavailable):
        await event_sender(client, queue, _FixedClock(), 10)()
    assert await queue.count_events() == 1
    await client.aclose()
    await queue.close()
