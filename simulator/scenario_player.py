"""Plays the seed scenarios against a running system, from outside, as tenants and testers would.

    python -m simulator.scenario_player --manifest var/demo/demo-manifest.json

Every step goes through the backend's public HTTP API (tenants) or the simulator's tester knobs
(door handle, attacker radio). Prints one row per scenario and exits 0 only if all matched.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

HTTP_TIMEOUT = httpx.Timeout(15.0, connect=3.0)  # an unlock request waits up to ~8 s for the lock
UNLOCK_WAIT_S = 8.0
SMS_WAIT_S = 10.0  # delivery worker polls every 0.25 s; retries back off from 1 s
NO_SMS_GRACE_S = 1.5  # how long we watch to be sure that no SMS went out
# Lock clock pushed this far ahead makes a captured frame expired: beyond TTL plus skew tolerance.
EXPIRED_SKEW_MS = 10 * 60 * 1000


@dataclass
class Outcome:
    scenario: str
    decision: str
    lock: str
    alerts: str
    sms: str
    ok: bool
    problem: str = ""


class Player:
    def __init__(self, manifest: dict[str, Any]) -> None:
        self.m = manifest
        self.api = httpx.Client(base_url=manifest["backend_url"], timeout=HTTP_TIMEOUT)
        self.sim = httpx.Client(base_url=manifest["simulator_url"], timeout=HTTP_TIMEOUT)
        self.tokens: dict[str, str] = {}

    # ------------------------------------------------------------------ helpers
    def login(self, who: str) -> str:
        if who not in self.tokens:
            person = self.m["people"][who]
            r = self.api.post("/api/v1/auth/login", json={"phone": person["phone"], "password": person["password"]})
            r.raise_for_status()
            self.tokens[who] = r.json()["token"]
        return self.tokens[who]

    def unlock(self, who: str, lock_id: str, code: str | None) -> httpx.Response:
        return self.api.post(
            "/api/v1/tenant/unlocks", params={"wait_s": UNLOCK_WAIT_S},
            json={"lock_id": lock_id, "health_code": code}, headers={"Authorization": f"Bearer {self.login(who)}"},
        )

    def lock_state(self, lock_id: str) -> dict[str, Any]:
        r = self.sim.get(f"/locks/{lock_id}")
        r.raise_for_status()
        state: dict[str, Any] = r.json()
        return state

    def sms_count(self) -> int:
        return len(self.sms_since(0))

    def sms_since(self, start: int) -> list[dict[str, Any]]:
        r = self.sim.get("/sms/v1/messages")
        r.raise_for_status()
        messages: list[dict[str, Any]] = r.json()["messages"]
        return messages[start:]

    def wait_sms(self, start: int, needle: str) -> dict[str, Any] | None:
        deadline = time.monotonic() + SMS_WAIT_S
        while time.monotonic() < deadline:
            for message in self.sms_since(start):
                if needle in message["text"]:
                    return message
            time.sleep(0.2)
        return None

    def wait_actuations(self, lock_id: str, before: int) -> int:
        deadline = time.monotonic() + UNLOCK_WAIT_S
        while time.monotonic() < deadline:
            now = int(self.lock_state(lock_id)["actuations"])
            if now > before:
                return now
            time.sleep(0.1)
        return int(self.lock_state(lock_id)["actuations"])

    # ------------------------------------------------------------------ scenarios
    def granted(self, scenario: str, who: str, needle: str | None, form: str | None = None) -> Outcome:
        person = self.m["people"][who]
        before, sms_start = self.lock_state(person["lock_id"])["actuations"], self.sms_count()
        r = self.unlock(who, person["lock_id"], person["health_code"])
        body = r.json()
        after = self.wait_actuations(person["lock_id"], before)
        decision = f"{r.status_code} {body.get('state')} ({body.get('reason_code')})"
        lock = "actuated" if after == before + 1 else f"did not actuate ({before}->{after})"
        sms = self.wait_sms(sms_start, needle) if needle else None
        if needle is None:
            time.sleep(NO_SMS_GRACE_S)
            extra = self.sms_since(sms_start)
            ok = r.status_code == 201 and body.get("state") == "confirmed" and after == before + 1 and not extra
            return Outcome(scenario, decision, lock, "none" if not extra else f"{len(extra)} unexpected",
                           "—" if not extra else extra[0]["text"], ok)
        text = sms["text"] if sms else "(no SMS)"
        ok = (r.status_code == 201 and body.get("state") == "confirmed" and after == before + 1 and sms is not None
              and (form is None or re.match(form, text) is not None))
        return Outcome(scenario, decision, lock, needle, text, ok)

    def no_code(self) -> Outcome:
        person = self.m["people"]["no_code"]
        before, sms_start = self.lock_state(person["lock_id"])["actuations"], self.sms_count()
        r = self.unlock("no_code", person["lock_id"], None)
        body = r.json()
        sms = self.wait_sms(sms_start, f"无健康码人员{person['masked_name']}")
        after = self.lock_state(person["lock_id"])["actuations"]
        ok = r.status_code == 201 and body.get("state") == "denied" and after == before and sms is not None
        return Outcome("S4 no code", f"{r.status_code} {body.get('state')}: {body.get('reason')}",
                       "stayed shut" if after == before else "ACTUATED", "no-code report",
                       sms["text"] if sms else "(no SMS)", ok)

    def foreign_door(self) -> Outcome:
        other_lock = self.m["people"]["yellow"]["lock_id"]
        before = self.lock_state(other_lock)["actuations"]
        r = self.unlock("green", other_lock, self.m["people"]["green"]["health_code"])
        body = r.json()
        history = self.api.get("/api/v1/tenant/unlocks", headers={"Authorization": f"Bearer {self.login('green')}"})
        recorded = any(a["lock_id"] == other_lock and a["reason_code"] == "no_active_tenancy" for a in history.json())
        time.sleep(0.5)
        after = self.lock_state(other_lock)["actuations"]
        ok = r.status_code == 403 and after == before and recorded
        return Outcome("S5 not their door", f"{r.status_code} {body.get('error')}",
                       "stayed shut" if after == before else "ACTUATED",
                       "audited" if recorded else "NOT RECORDED", "—", ok)

    def isolated_goes_out(self) -> Outcome:
        person = self.m["people"]["isolated"]
        sms_start = self.sms_count()
        r = self.sim.post(f"/locks/{person['lock_id']}/door", json={"action": "open_inside"})
        sms = self.wait_sms(sms_start, f"居家隔离人员{person['masked_name']}出门")
        ok = r.status_code < 300 and sms is not None
        return Outcome("S6 isolated resident opens from inside", "— (exit is never blocked)",
                       f"door opened from inside ({r.status_code})", "isolated went out",
                       sms["text"] if sms else "(no SMS)", ok)

    def attacks(self) -> Outcome:
        lock_id = self.m["people"]["red"]["lock_id"]  # its last frame was captured off the air in S3
        before = self.lock_state(lock_id)
        results = {kind: self.attack(lock_id, kind) for kind in ("replay_captured", "forged_mac")}
        # The captured frame, genuinely signed, arrives after its expiry by the lock's clock.
        self.sim.post(f"/locks/{lock_id}/clock", json={"offset_ms": EXPIRED_SKEW_MS}).raise_for_status()
        try:
            results["expired"] = self.attack(lock_id, "replay_captured")
        finally:
            self.sim.post(f"/locks/{lock_id}/clock", json={"offset_ms": before["clock_offset_ms"]})
        after = self.lock_state(lock_id)["actuations"]
        expected = {"replay_captured": "REPLAYED", "forged_mac": "BAD_MAC", "expired": "EXPIRED"}
        ok = after == before["actuations"] and all(
            res.get("rejected_reason") == expected[kind] and not res.get("actuated") for kind, res in results.items()
        )
        summary = ", ".join(f"{kind}→{res.get('rejected_reason')}" for kind, res in results.items())
        return Outcome("S7 replayed / forged / expired frame", "— (sent straight to the lock)",
                       ("nothing actuated; " if after == before["actuations"] else "ACTUATED; ") + summary,
                       "lock reports each rejection (security notice)", "—", ok)

    def attack(self, lock_id: str, kind: str) -> dict[str, Any]:
        result: dict[str, Any] = self.sim.post(f"/locks/{lock_id}/attack", json={"kind": kind}).json()
        return result

    def play(self) -> list[Outcome]:
        town, red = self.m["town"], self.m["people"]["red"]["masked_name"]
        steps: list[tuple[str, Callable[[], Outcome]]] = [
            ("S1 green", lambda: self.granted("S1 green code", "green", None)),
            ("S2 yellow", lambda: self.granted("S2 yellow code", "yellow",
                                               f"黄码人员{self.m['people']['yellow']['masked_name']}开门")),
            ("S3 red", lambda: self.granted("S3 red code", "red", f"红码人员{red}开门，请核查",
                                            rf"^\d\d:\d\d，在{town}，红码人员{red}开门，请核查")),
            ("S4", self.no_code),
            ("S5", self.foreign_door),
            ("S6", self.isolated_goes_out),
            ("S7", self.attacks),
        ]
        outcomes = []
        for name, step in steps:
            try:
                outcomes.append(step())
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                outcomes.append(Outcome(name, "error", "", "", "", False, repr(exc)))
        return outcomes


def print_table(outcomes: list[Outcome]) -> None:
    for o in outcomes:
        mark = "PASS" if o.ok else "FAIL"
        sys.stdout.write(f"[{mark}] {o.scenario}\n      decision: {o.decision}\n      lock:     {o.lock}\n"
                         f"      alerts:   {o.alerts}\n      police SMS: {o.sms}\n")
        if o.problem:
            sys.stdout.write(f"      problem:  {o.problem}\n")
    passed = sum(o.ok for o in outcomes)
    sys.stdout.write(f"\n{passed} passed, {len(outcomes) - passed} failed\n")
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, required=True)
    args = parser.parse_args()
    outcomes = Player(json.loads(args.manifest.read_text(encoding="utf-8"))).play()
    print_table(outcomes)
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
