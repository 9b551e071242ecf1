"""Putting a date together: a zone, a span from now, a time of day and a day, in that order.

Dates are computed as wall times (in the zone the text names, else the member's)
and converted to UTC at the very end, so they stay right across DST changes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache

from handlers.dates import en, fallback, zh
from handlers.dates.clock import Clock, find_clock
from handlers.dates.days import YEARS, Day
from handlers.dates.durations import Duration, read_duration, shift_day
from handlers.dates.holiday_names import holiday_dates
from handlers.dates.words import normalise
from handlers.dates.zones import find_zone
from handlers.errors import UserError

MAX_DATE_LEN = 100
DEFAULT_TIME = (9, 0)  # a date without a time of day means 09:00 local


@dataclass(frozen=True)
class When:
    at: datetime  # aware, UTC
    explicit_time: bool  # the user gave a time of day
    assumed: tuple[str, ...] = ()  # what the reading chose for the member: 'first', 'monday', 'pm', …


_NOW = {"now", "right now", "just now", "at the moment", "atm", "immediately", "asap", "现在", "马上", "立刻", "立即"}
_CONNECTORS = re.compile(r"\b(?:at|on|for|by|until|till|due)\b|^(?:在|于)|的$")


def _day(text: str, today: date, past: bool) -> Day | None:
    if not text:
        return None
    if re.search(r"[\u4e00-\u9fff]", text):
        found = zh.read_day(text, today, past)
    else:
        found = en.read_day(text, today, past)
    if found is None and (holidays := holiday_dates(text, today)):
        found = Day(tuple(holidays))
    return found


def _pick(moments: list[datetime], now: datetime, past: bool) -> datetime:
    """The earliest moment not before now (latest not after now when `past`)."""
    moments = sorted(moments)
    if past:
        return max((m for m in moments if m <= now), default=moments[0])
    return min((m for m in moments if m >= now), default=moments[-1])


def _wall(day: date, clock: tuple[int, int, int], zone: tzinfo) -> datetime:
    """Local wall time → UTC (zoneinfo resolves DST for that very date)."""
    if day.year not in YEARS:
        raise UserError("error.bad_date", text=day.isoformat())
    return datetime.combine(day, time(*clock), tzinfo=zone).astimezone(timezone.utc)


def _shift_now(now: datetime, zone: tzinfo, duration: Duration, past: bool) -> datetime:
    """now ± duration: hours and smaller on the clock, days and up on the calendar."""
    sign = duration.sign or (-1 if past else 1)
    if duration.unit in ("second", "minute", "hour"):
        return now.astimezone(timezone.utc) + sign * duration.as_delta()
    local = now.astimezone(zone)
    day = shift_day(local.date(), sign * int(duration.amount), duration.unit)
    return _wall(day, (local.hour, local.minute, 0), zone)


def read(text: str, now: datetime, zone: tzinfo, past: bool, *, fallback_ok: bool = True) -> When:
    """Read a folded date/time in the member's zone; see `parsing.parse_when` for the forms."""
    if len(text) > MAX_DATE_LEN:
        raise UserError("error.bad_date", text=text[:40] + "…")
    normalised = normalise(text)
    try:
        return _read(normalised, now, zone, past, fallback_ok)
    except UserError as error:
        error.params["text"] = _as_typed(str(error.params.get("text", "")), text, normalised)
        raise


def _as_typed(part: str, text: str, normalised: str) -> str:
    """The part of the date that was not understood, as the member typed it."""
    typed = " ".join(text.split())
    if not part or len(part) >= len(normalised) - 3:
        return typed
    at = typed.lower().find(part)
    return typed[at:at + len(part)] if at >= 0 else part


@lru_cache(maxsize=512)
def _read_cached(text: str, now: datetime, zone: tzinfo, past: bool, fallback_ok: bool) -> When | UserError:
    try:
        return _read_uncached(text, now, zone, past, fallback_ok)
    except UserError as error:
        return error


def _read(text: str, now: datetime, zone: tzinfo, past: bool, fallback_ok: bool) -> When:
    found = _read_cached(text, now, zone, past, fallback_ok)
    if isinstance(found, UserError):
        raise UserError(found.key, **found.params)
    return found


def _read_uncached(text: str, now: datetime, member_zone: tzinfo, past: bool, fallback_ok: bool) -> When:
    if not text:
        raise UserError("error.bad_date", text=text)
    if text in _NOW:
        return When(now.astimezone(timezone.utc), explicit_time=True)
    written_zone, text = find_zone(text)
    zone = written_zone or member_zone
    if duration := read_duration(text):
        return When(_shift_now(now, zone, duration, past), explicit_time=True)
    if text.startswith("today in ") and (duration := read_duration(text.removeprefix("today "))):
        return When(_shift_now(now, zone, duration, past), explicit_time=True)

    clock, rest = find_clock(text)
    rest = " ".join(_CONNECTORS.sub(" ", rest).split()).strip(" -")
    today = now.astimezone(member_zone).date()  # 'tomorrow 9am PST': the member's tomorrow, 9am there
    assumed: tuple[str, ...] = (clock.assumed,) if clock and clock.assumed else ()
    if clock is not None and not rest:
        day = Day((today,)) if clock.period_day == 0 else Day(tuple(today + timedelta(days=k) for k in (-1, 0, 1)))
    else:
        day = _day(rest, today, past)
        if day is None and fallback_ok and (found := fallback.read(rest, now.astimezone(zone), past)):
            day, parsed = Day((found[0],)), found[1]
            clock = clock or (Clock(*parsed) if parsed else None)
        if day is None:
            raise UserError("error.bad_date", text=rest or text)
        if day.assumed and day.assumed != "today":
            assumed = (day.assumed, *assumed)
    hms = (clock.hour, clock.minute, clock.second) if clock else (*DEFAULT_TIME, 0)
    dates = [d + timedelta(days=1) if clock and clock.next_day else d for d in day.dates]
    moments = [_wall(d, hms, zone) for d in dates]
    return When(_pick(moments, now, past), explicit_time=clock is not None, assumed=assumed)


# --- the longest leading date ---------------------------------------------------------------

_CJK = re.compile(r"[\u3400-\u9fff]")
_ENDS_IN_COUNT = re.compile(r"(?<![0-9:./-])[0-9]+$|\b(?:a|an|one|two|three|four|five|six|seven|eight|nine|ten|few|couple)$")


def _cuts(text: str) -> list[int]:
    """Where a leading date may end: after each word, and after each Chinese character."""
    cuts = {m.end() for m in re.finditer(r"\S+", text)}
    cuts |= {i + 1 for i, ch in enumerate(text) if _CJK.match(ch)}
    return sorted((c for c in cuts if c <= MAX_DATE_LEN), reverse=True)


def split_leading(text: str, now: datetime, zone: tzinfo, past: bool = False) -> tuple[When, str]:
    """The longest leading part of `text` that is a date, and the rest ('friday bring samples' →
    friday, 'bring samples'). Of leading parts that read as the same moment the shortest is the
    date, so words that add nothing stay in the note ('tomorrow 1am night shift' → 'night shift',
    'friday at the office' → 'at the office'); a part ending in a count keeps its unit.
    Raises UserError naming the text when no leading part is a date."""
    cuts = _cuts(text)
    for index, cut in enumerate(cuts):
        try:
            when = read(text[:cut], now, zone, past, fallback_ok=index == 0 and cut == len(text))
        except UserError:
            continue
        for shorter in cuts[index + 1:]:
            if not text[shorter:shorter + 1].isspace():
                continue  # whole words only: 月底前 stays the date, not 月底 with 前 in the note
            if _ENDS_IN_COUNT.search(normalise(text[:shorter])):
                break  # 'in 3' is not 'in 3 minutes' with 'minutes' left over
            try:
                if read(text[:shorter], now, zone, past, fallback_ok=False) != when:
                    break
            except UserError:
                break
            cut = shorter
        return when, text[cut:].strip(" ,，")
    raise UserError("error.bad_date", text=text.strip()[:40])
