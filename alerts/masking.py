"""How personal data is shown: surname + 某, phones with the middle hidden."""

from __future__ import annotations


def mask_name(family_name: str) -> str:
    return f"{family_name}某"


def mask_phone(phone: str) -> str:
    digits = phone.strip()
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"
