"""The access policy: pure, data-driven, no I/O. Inputs are facts; the output is a decision in words.

Default policy (DESIGN.md), overridable per town through Town.policy_overrides with the field
names of `JurisdictionPolicy`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from models.alerts import AlertKind, Severity
from models.health import HealthColour


class HealthStatus(StrEnum):
    KNOWN = "known"  # the authority answered with a colour just now
    NONE_SUBMITTED = "none_submitted"
    UNKNOWN_CODE = "unknown_code"  # the authority does not know the code
    NOT_HOLDER = "not_holder"  # the authority says the code is someone else's
    HOLDER_UNKNOWN = "holder_unknown"  # the authority does not say whose it is, or we hold no ID for the person
    UNREACHABLE_RECENT = "unreachable_recent"  # authority down; a recent colour is on file
    UNREACHABLE_STALE = "unreachable_stale"  # authority down; nothing recent on file


@dataclass(frozen=True)
class HealthEvidence:
    status: HealthStatus
    colour: HealthColour | None = None


@dataclass(frozen=True)
class JurisdictionPolicy:
    yellow_opens: bool = True
    red_opens: bool = True
    fallback_to_recent_status: bool = True  # authority down: decide on a recent colour on file
    foreign_door_tries_before_alert: int = 3  # "repeated tries -> security alert"

    @classmethod
    def for_town(cls, overrides: dict[str, Any] | None) -> JurisdictionPolicy:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in (overrides or {}).items() if k in known})


@dataclass(frozen=True)
class AlertSpec:
    kind: AlertKind
    severity: Severity


@dataclass(frozen=True)
class Decision:
    grant: bool
    reason_code: str
    reason: str  # Chinese, for the tenant at the door: what happened and what to do
    alerts: tuple[AlertSpec, ...] = ()


NO_TENANCY = Decision(False, "no_active_tenancy", "您没有这扇门的有效租约，门保持关闭。如有疑问请联系房东。")

_BY_COLOUR = {
    HealthColour.GREEN: Decision(True, "green_code", "绿码，租约有效，已发送开门指令。"),
    HealthColour.YELLOW: Decision(
        True, "yellow_code", "黄码：已发送开门指令，并已按规定通知辖区派出所。",
        (AlertSpec(AlertKind.YELLOW_CODE_ENTRY, Severity.WARNING),),
    ),
    HealthColour.RED: Decision(
        True, "red_code", "红码：已发送开门指令，并已通知辖区派出所，请配合核查。",
        (AlertSpec(AlertKind.RED_CODE_ENTRY, Severity.URGENT),),
    ),
}
_NO_CODE_ALERT = (AlertSpec(AlertKind.NO_CODE_ATTEMPT, Severity.WARNING),)


def decide(has_tenancy: bool, gating_enabled: bool, health: HealthEvidence, policy: JurisdictionPolicy) -> Decision:
    if not has_tenancy:
        return NO_TENANCY
    if not gating_enabled:
        return Decision(True, "gating_off", "本地已解除健康码管控，租约有效，已发送开门指令。")
    if health.status is HealthStatus.NONE_SUBMITTED:
        return Decision(False, "no_code", "未提交健康码，门保持关闭。请在开门时附上您的健康码后重试。", _NO_CODE_ALERT)
    if health.status is HealthStatus.UNKNOWN_CODE:
        return Decision(
            False, "unknown_code", "卫健部门查不到这个健康码，门保持关闭。请核对健康码后重试。", _NO_CODE_ALERT
        )
    if health.status is HealthStatus.NOT_HOLDER:
        return Decision(
            False, "code_of_another_person", "这个健康码不属于您本人，门保持关闭。请出示您自己的健康码。",
            (AlertSpec(AlertKind.BORROWED_CODE, Severity.WARNING),),
        )
    if health.status is HealthStatus.HOLDER_UNKNOWN:
        return Decision(False, "code_holder_unknown",
                        "无法确认这个健康码属于您本人，门保持关闭。请联系房东或社区核对身份信息。")
    notice = (AlertSpec(AlertKind.AUTHORITY_UNREACHABLE, Severity.NOTICE),)
    if health.status is HealthStatus.UNREACHABLE_STALE or (
        health.status is HealthStatus.UNREACHABLE_RECENT and not policy.fallback_to_recent_status
    ):
        return Decision(
            False, "authority_unreachable", "暂时无法查询健康码，且没有近期记录，门保持关闭。请稍后重试。", notice
        )
    colour = health.colour or HealthColour.RED
    decision = _BY_COLOUR[colour]
    if (colour is HealthColour.YELLOW and not policy.yellow_opens) or (
        colour is HealthColour.RED and not policy.red_opens
    ):
        decision = Decision(False, f"{colour.value}_code_refused", "按本地规定，该健康码颜色不能开门，门保持关闭。",
                            decision.alerts)
    if health.status is HealthStatus.UNREACHABLE_RECENT:
        return Decision(decision.grant, decision.reason_code + "_from_record",
                        decision.reason + "（健康码服务暂不可用，按近期记录判定）", decision.alerts + notice)
    return decision
