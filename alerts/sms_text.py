"""SMS wording, in Chinese, in the form police already know: time, place, who did what, what to do."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from models.alerts import AlertKind

_WHAT: dict[AlertKind, str] = {
    AlertKind.RED_CODE_ENTRY: "红码人员{who}开门，请核查",
    AlertKind.YELLOW_CODE_ENTRY: "黄码人员{who}开门，请关注",
    AlertKind.NO_CODE_ATTEMPT: "无健康码人员{who}试图开门，门未开启，请核查",
    AlertKind.BORROWED_CODE: "{who}出示他人健康码试图开门，门未开启，请核查",
    AlertKind.REPEATED_FOREIGN_DOOR: "{who}多次尝试开启非本人租住的房门，门未开启，请核查",
    AlertKind.ISOLATED_WENT_OUT: "居家隔离人员{who}出门，请核查",
    AlertKind.ISOLATED_WENT_IN: "居家隔离人员{who}进门，请核查",
    AlertKind.AUTHORITY_UNREACHABLE: "健康码服务无法访问，{who}的开门请求按规则处理，请关注",
    AlertKind.LOCK_SECURITY: "{who}，请技术人员核查",
}


@dataclass(frozen=True)
class SmsContext:
    occurred_at: dt.datetime  # UTC
    timezone: str  # the property's IANA zone: police read local time
    town: str
    address: str  # property address and unit, so the officer knows which door


def render_sms(kind: AlertKind, who: str, context: SmsContext) -> str:
    local = context.occurred_at.astimezone(ZoneInfo(context.timezone))
    what = _WHAT[kind].format(who=who)
    return f"{local:%H:%M}，在{context.town}，{what}。地址：{context.address}"
