"""Data quality on the way in: one form for phones, e-mails, tags and names.

Every door (commands, forms, CSV import) goes through these, so `+86 138-0013-8000`
and `13800138000` are the same phone and `VIP`, `ｖｉｐ` and `vip` the same tag.
Errors are `InvalidValue(field, value)`; the handlers turn them into a message.
"""
from __future__ import annotations

import re
import unicodedata

import phonenumbers
from email_validator import EmailNotValidError, validate_email

MAX_TAG = 64


class InvalidValue(ValueError):
    def __init__(self, field: str, value: str) -> None:
        super().__init__(f"invalid {field}: {value!r}")
        self.field = field
        self.value = value


def fold(text: str) -> str:
    """NFKC (full-width → half-width) and whitespace collapsed; case kept."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def clean_name(name: str) -> str:
    cleaned = fold(name).strip("\"'")
    if not cleaned or len(cleaned) > 200 or not any(ch.isalnum() for ch in cleaned):
        raise InvalidValue("name", name)
    return cleaned


def phone(raw: str, region: str) -> str:
    """E.164 (`+8613800138000`), reading numbers without a country code in `region`."""
    text = fold(raw)
    if len(text) > 40:
        raise InvalidValue("phone", raw)
    try:
        number = phonenumbers.parse(text, region.upper())
    except phonenumbers.NumberParseException:
        raise InvalidValue("phone", raw) from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidValue("phone", raw)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def email(raw: str) -> str:
    """Validated and lower-cased; no DNS lookups (the bot may run offline)."""
    text = fold(raw)
    if len(text) > 254:
        raise InvalidValue("email", raw)
    try:
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        raise InvalidValue("email", raw) from None
    return result.normalized.lower()


_TAG_SPLIT = re.compile(r"[\s,;、]+")


def tag(raw: str) -> str:
    """One tag name: width- and case-folded, `#` dropped, inner spaces as `-`."""
    name = "-".join(fold(raw).casefold().lstrip("#").split())
    if not name or len(name) > MAX_TAG or not any(ch.isalnum() for ch in name):
        raise InvalidValue("tag", raw)
    return name


def tags(raw: str) -> list[str]:
    """Several tags from `vip, hot；重点` (commas, semicolons, 、 or spaces between)."""
    seen: dict[str, None] = {}
    for part in _TAG_SPLIT.split(fold(raw)):
        if part:
            seen[tag(part)] = None
    return list(seen)
