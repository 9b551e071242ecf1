"""Time zones written in the text: 'GMT', 'UTC+8', 'PST', '(BST)', 'CET', '北京时间', 'Asia/Tokyo'.

The time is read as a wall time in that zone and then shown in the member's own,
so 'Thursday 8:00 GMT' for a member at UTC-2 is Thursday 06:00, never another day's.
An abbreviation means what it says (PST is UTC-8, PDT UTC-7); PT, ET, CT and MT
follow the region's clock. CST is refused: it is China's UTC+8 and US Central UTC-6.
"""
from __future__ import annotations

import re
from datetime import timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from handlers.errors import UserError

_FIXED_HOURS = {
    "gmt": 0, "utc": 0, "z": 0, "wet": 0, "bst": 1, "cet": 1, "wat": 1, "cest": 2, "eet": 2, "sast": 2,
    "eest": 3, "msk": 3, "gst": 4, "ist": 5.5, "pkt": 5, "ict": 7, "wib": 7, "hkt": 8, "sgt": 8,
    "awst": 8, "pht": 8, "jst": 9, "kst": 9, "acst": 9.5, "aest": 10, "aedt": 11, "nzst": 12, "nzdt": 13,
    "hst": -10, "akst": -9, "akdt": -8, "pst": -8, "pdt": -7, "mst": -7, "mdt": -6, "cdt": -5,
    "est": -5, "edt": -4, "ast": -4, "adt": -3, "brt": -3, "nst": -3.5,
}
_REGIONS = {"pt": "America/Los_Angeles", "mt": "America/Denver", "ct": "America/Chicago",
            "et": "America/New_York", "北京时间": "Asia/Shanghai", "东八区": "Asia/Shanghai",
            "香港时间": "Asia/Hong_Kong", "台北时间": "Asia/Taipei", "东京时间": "Asia/Tokyo",
            "新加坡时间": "Asia/Singapore", "伦敦时间": "Europe/London", "纽约时间": "America/New_York",
            "美东时间": "America/New_York", "美西时间": "America/Los_Angeles", "洛杉矶时间": "America/Los_Angeles",
            "巴黎时间": "Europe/Paris", "柏林时间": "Europe/Berlin", "悉尼时间": "Australia/Sydney",
            "格林尼治时间": "UTC", "格林威治时间": "UTC", "世界协调时间": "UTC", "协调世界时": "UTC"}
_ABBR = "|".join(sorted(list(_FIXED_HOURS) + [w for w in _REGIONS if w.isascii()] + ["cst"], key=len, reverse=True))
_CN_ZONE = "|".join(sorted((w for w in _REGIONS if not w.isascii()), key=len, reverse=True))
_ZONE = re.compile(
    rf"(?:(?<=[0-9\s])|^)(?P<abbr>{_ABBR})(?:\s*(?P<sign>[+-])\s*(?P<h>[0-9]{{1,2}})(?::?(?P<m>[0-9]{{2}}))?)?(?![a-z])"
    rf"|(?P<cn>{_CN_ZONE})|(?P<iana>\b[a-z]+/[a-z_]+(?:/[a-z_]+)?\b)"
    rf"|(?<=[0-9])\s*(?P<sign2>[+-])(?P<h2>[0-9]{{2}}):?(?P<m2>[0-9]{{2}})$"
)


@lru_cache(maxsize=1)
def _iana() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


def _offset(sign: str, hours: str, minutes: str | None) -> tzinfo | None:
    delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
    if delta > timedelta(hours=14):
        return None
    return timezone(-delta if sign == "-" else delta)


def find_zone(text: str) -> tuple[tzinfo | None, str]:
    """The zone named in `text` (normalised), and the text without it."""
    for m in _ZONE.finditer(text):
        zone = _zone_of(m)
        if zone is None:
            continue
        return zone, " ".join(f"{text[:m.start()]} {text[m.end():]}".split())
    return None, text


def _zone_of(m: re.Match) -> tzinfo | None:
    if m["cn"]:
        return ZoneInfo(_REGIONS[m["cn"]])
    if m["iana"]:
        name = _iana().get(m["iana"])
        return ZoneInfo(name) if name else None
    if m["sign2"]:
        return _offset(m["sign2"], m["h2"], m["m2"])
    abbr = m["abbr"]
    if abbr == "cst":
        raise UserError("error.zone_ambiguous", zone="CST")
    if abbr in _REGIONS:
        base: tzinfo | None = ZoneInfo(_REGIONS[abbr])
        return base if not m["sign"] else None
    hours = _FIXED_HOURS[abbr]
    if m["sign"]:
        return _offset(m["sign"], m["h"], m["m"]) if hours == 0 else None
    return timezone(timedelta(hours=hours))
