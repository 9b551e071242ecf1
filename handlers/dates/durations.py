"""Spans of time counted from now: 'in 2 hours', '3d', 'a fortnight hence', 'in a couple of
minutes', 'in 1/4h', 'three months ago', '3天后', '半小时后', '一个半小时后'.

Hours and smaller count on the clock; days and larger on the calendar, keeping the
time of day (so 'in 3 days' is the same wall time, also across a DST change).
"""
from __future__ import annotations

import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import date, timedelta

from handlers.dates.words import CN_NUM, EN_COUNTS, EN_NUMBER, cn_number, en_count

_UNITS = {
    "second": ("s", "sec", "secs", "second", "seconds", '"', "秒", "秒钟"),
    "minute": ("m", "min", "mins", "minute", "minutes", "'", "分钟", "分"),
    "hour": ("h", "hr", "hrs", "hour", "hours", "小时", "个小时", "钟头", "个钟头", "个钟"),
    "day": ("d", "day", "days", "天", "日"),
    "week": ("w", "wk", "wks", "week", "weeks", "周", "个周", "星期", "个星期", "礼拜", "个礼拜"),
    "fortnight": ("fortnight", "fortnights"),
    "month": ("mo", "mos", "month", "months", "个月"),
    "year": ("y", "yr", "yrs", "year", "years", "年"),
}
UNIT_OF = {word: unit for unit, words in _UNITS.items() for word in words}
SMALL_UNITS = ("second", "minute", "hour")
_EN_UNIT = "|".join(sorted((re.escape(w) for w in UNIT_OF if w.isascii()), key=len, reverse=True))
_CN_UNIT = "|".join(sorted((w for w in UNIT_OF if not w.isascii()), key=len, reverse=True))
_COUNT = "|".join(sorted((re.escape(w) for w in EN_COUNTS), key=len, reverse=True))
_FRACTION = {"1/4": 0.25, "1/2": 0.5, "3/4": 0.75, "quarter of an": 0.25, "a quarter of an": 0.25,
             "half an": 0.5, "half a": 0.5, "three-quarters of an": 0.75, "three quarters of an": 0.75}
_FRACTIONS = "|".join(sorted((re.escape(w) for w in _FRACTION), key=len, reverse=True))

_EN = re.compile(
    rf"(?:(?P<today>today\s+)?(?P<in>in|within|after|upcoming)\s+)?"
    rf"(?:(?P<frac>{_FRACTIONS})\s*"
    rf"|(?P<n>[0-9]{{1,4}}(?:\.[0-9]{{1,2}})?|{EN_NUMBER}|{_COUNT})(?P<half>\s+and\s+an?\s+half)?\s*"
    rf"(?:more\s+|(?P<up>upcoming)\s+)?)?"
    rf"(?P<unit>{_EN_UNIT})(?![a-z])"
    rf"(?:\s+(?P<dir>ago|back|earlier|hence|later|from\s+(?:right\s+)?now|from\s+today))?",
)
# 'in 15' is fifteen minutes, as people say it
_EN_BARE_MINUTES = re.compile(r"in\s+(?P<n>[0-9]{1,2})")
# Chinese needs the direction word: 3日 alone is the 3rd of the month.
_CN = re.compile(
    rf"(?:再过|过)?(?P<n>[0-9]{{1,4}}(?:\.[0-9])?|{CN_NUM}|半|几)?(?:个(?P<half0>半))?(?P<unit>{_CN_UNIT})(?P<half>半)?\s*"
    rf"(?P<dir>之?后|以后|过后|之?前|以前|之内|内)")


@dataclass(frozen=True)
class Duration:
    amount: float
    unit: str  # second, minute, hour, day, week, month, year
    sign: int | None  # +1 / -1 when the text says which way, None for a bare '3d'

    def as_delta(self) -> timedelta:
        """Clock units (second, minute, hour) as a timedelta."""
        return timedelta(**{f"{self.unit}s": self.amount})


def read_duration(text: str) -> Duration | None:
    """`text` (normalised) as a whole as a span from now, else None."""
    if m := _EN_BARE_MINUTES.fullmatch(text):
        return Duration(int(m["n"]), "minute", 1) if int(m["n"]) < 60 else None
    if re.fullmatch(r"(?:1[3-9]|2[0-3])h", text):
        return None  # '15h' is 15:00 (see clock.py); '3h' is three hours
    if m := _EN.fullmatch(text):
        return _english(m)
    if m := _CN.fullmatch(text):
        return _chinese(m)
    return None


def _english(m: re.Match) -> Duration | None:
    unit = UNIT_OF[m["unit"]]
    if m["frac"]:
        amount = _FRACTION[m["frac"].strip()]
    elif m["n"]:
        amount = en_count(m["n"])
    elif len(m["unit"]) <= 2 or m["unit"] in ("'", '"'):
        return None  # 'in h', 'd'
    else:
        amount = 1.0  # 'in a sec' has its count; 'next hour' is not this rule's
        if not m["in"] and not m["dir"]:
            return None
    if amount is None or amount <= 0:
        return None
    if m["half"]:
        amount += 0.5
    direction = (m["dir"] or "").split()[0] if m["dir"] else ""
    if m["in"] and direction in ("ago", "back", "earlier"):
        return None
    if m["today"] and not m["in"]:
        return None
    sign = -1 if direction in ("ago", "back", "earlier") else 1 if (m["in"] or direction or m["up"]) else None
    return _whole(amount, unit, sign)


def _chinese(m: re.Match) -> Duration | None:
    unit = UNIT_OF[m["unit"]]
    word = m["n"] or ("一" if m["half"] else None)
    if word is None:
        return None
    amount = 0.5 if word == "半" else 3.0 if word == "几" else (
        float(word) if word.replace(".", "", 1).isdigit() else cn_number(word))
    if not amount:
        return None
    if m["half"] or m["half0"]:
        amount += 0.5
    sign = -1 if "前" in m["dir"] else 1
    return _whole(float(amount), unit, sign)


def _whole(amount: float, unit: str, sign: int | None) -> Duration | None:
    """Fractions of an hour become minutes; of a day or more they are refused (half a month?)."""
    if unit == "fortnight":
        amount, unit = amount * 2, "week"
    if amount != int(amount):
        if unit == "hour":
            amount, unit = amount * 60, "minute"
        elif unit == "minute":
            amount, unit = amount * 60, "second"
        elif unit != "second":
            return None
    if amount > 100_000:
        return None
    return Duration(int(amount) if amount == int(amount) else amount, unit, sign)


def day_after(text: str, today: date, past: bool) -> date | None:
    """A day-sized span used as a date, with a time of day after it ('in 3 days 10am', '3天后下午3点')."""
    duration = read_duration(text)
    if duration is None or duration.unit in SMALL_UNITS:
        return None
    return shift_day(today, (duration.sign or (-1 if past else 1)) * int(duration.amount), duration.unit)


# --- calendar arithmetic --------------------------------------------------------------------

def add_months(day: date, months: int) -> date:
    year, month = divmod(day.month - 1 + months, 12)
    year += day.year
    return date(year, month + 1, min(day.day, monthrange(year, month + 1)[1]))


def shift_day(day: date, amount: int, unit: str) -> date:
    if unit == "day":
        return day + timedelta(days=amount)
    if unit == "week":
        return day + timedelta(weeks=amount)
    if unit == "month":
        return add_months(day, amount)
    return add_months(day, 12 * amount)  # year
