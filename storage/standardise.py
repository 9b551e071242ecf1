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
#: Characters nobody sees that change what others read: zero-width ones, and the direction marks and
#: overrides that make `Invoice\u202egpj.exe` show as "Invoiceexe.jpg". Every stored text loses them.
INVISIBLE = "\u200b\u200c\u200d\u200e\u200f\u2060\ufeff\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_INVISIBLE_OUT = {ord(ch): None for ch in INVISIBLE}


class InvalidValue(ValueError):
    def __init__(self, field: str, value: str) -> None:
        super().__init__(f"invalid {field}: {value!r}")
        self.field = field
        self.value = value


def visible(text: str) -> str:
    """The text without invisible characters (`INVISIBLE`): the one cleaning step of every door
    (typed commands, forms, guided answers, CSV), applied by each write of storage."""
    return text.translate(_INVISIBLE_OUT)


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
    name = "-".join(fold(visible(raw)).casefold().lstrip("#").split())
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
