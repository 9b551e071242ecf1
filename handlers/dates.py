"""Natural dates and times of day, in English and Chinese, in the member's time zone.

Own rules come first because dateparser misreads several everyday forms (下周五,
周五 on a Sunday, 下午3点); dateparser only handles the English long tail. Dates
are computed as local wall times and converted to UTC at the very end, so the
results stay right across DST changes.

Functions here expect text already folded to half-width (`parsing.fold`);
`parsing.parse_when` is the public entry point.
"""
from __future__ import annotations

import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from handlers.errors import UserError

MAX_DATE_LEN = 100
DEFAULT_TIME = (9, 0)  # a date without a time of day means 09:00 local
YEARS = range(1900, 2201)  # anything outside is a typo, and would overflow on conversion


@dataclass(frozen=True)
class When:
    at: datetime  # aware, UTC
    explicit_time: bool  # the user gave a time of day


# --- numbers ------------------------------------------------------------------

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4,
              "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
CN_NUM = "[零〇一二两三四五六七八九十]{1,4}"  # regex for a Chinese number (see cn_number)
NUM = rf"[0-9]{{1,4}}|{CN_NUM}"


def cn_number(text: str) -> int | None:
    """'12', '十二', '两', '二十三', '二〇二六' → int; None when it is not such a number."""
    if text.isascii() and text.isdigit():
        return int(text)
    if "十" not in text:
        digits = [_CN_DIGITS.get(ch) for ch in text]
        if not digits or None in digits:
            return None
        return int("".join(map(str, digits)))
    tens, _, units = text.partition("十")
    if len(tens) > 1 or len(units) > 1:
        return None
    high = _CN_DIGITS.get(tens) if tens else 1
    low = _CN_DIGITS.get(units) if units else 0
    if high is None or low is None:
        return None
    return high * 10 + low


# --- time of day ----------------------------------------------------------------

# period word → (how it shifts an hour, its default hour when no hour is given)
_PERIODS: dict[str, tuple[str, int | None]] = {
    "凌晨": ("am", None), "早上": ("am", 9), "早晨": ("am", 9), "上午": ("am", 9),
    "早": ("am", 9), "中午": ("noon", 12), "下午": ("pm", 15), "午后": ("pm", 15),
    "傍晚": ("pm", 18), "晚上": ("pm", 20), "夜里": ("pm", 21), "晚": ("pm", 20),
    "morning": ("am", 9), "noon": ("noon", 12), "afternoon": ("pm", 15),
    "evening": ("pm", 19), "night": ("pm", 20), "midnight": ("am", 0),
}
_PERIOD = "|".join(
    word if not word.isascii() else rf"\b{word}\b"
    for word in sorted(_PERIODS, key=len, reverse=True)
)
_CLOCK = re.compile(
    rf"(?:(?P<period>{_PERIOD})\s*)?(?:"
    # 3pm, 3:30 pm, 3 a.m.
    r"(?<![0-9])(?P<h12>[0-9]{1,2})(?::(?P<m12>[0-9]{2}))?\s*(?P<ampm>[ap])\.?m\b\.?"
    # 14:30, 下午3:30
    r"|(?<![0-9])(?P<h24>[0-9]{1,2}):(?P<m24>[0-9]{2})(?![0-9])"
    # 3点, 十点半, 10点15分, 8点一刻 — not the 二 of 周二 in 周二十点; 3点 alone is 03:00
    rf"|(?<![0-9周期拜])(?P<hcn>[0-9]{{1,2}}|{CN_NUM})\s*[点點时時]钟?"
    rf"(?:(?P<half>半)|(?P<quarter>[一三])刻|(?P<mcn>[0-9]{{1,2}}|{CN_NUM})分?)?"
    r")",
    re.I,
)
_PERIOD_ONLY = re.compile(_PERIOD, re.I)


def _clock_value(m: re.Match) -> tuple[int, int] | None:
    """(hour, minute) in 24 h for a `_CLOCK` match, or None if out of range."""
    shift = _PERIODS[m["period"].lower()][0] if m["period"] else None
    if m["h12"]:
        hour, minute = int(m["h12"]), int(m["m12"] or 0)
        if not 1 <= hour <= 12:
            return None
        shift = "pm" if m["ampm"].lower() == "p" else "am"
    elif m["h24"]:
        hour, minute = int(m["h24"]), int(m["m24"])
    else:
        hour = cn_number(m["hcn"])
        minute = (30 if m["half"] else 15 * cn_number(m["quarter"]) if m["quarter"]
                  else cn_number(m["mcn"]) if m["mcn"] else 0)
        if hour is None or minute is None:
            return None
    if shift == "pm" and hour < 12 or shift == "noon" and hour < 6:
        hour += 12
    elif shift == "am" and hour == 12:
        hour = 0
    if hour > 23 or minute > 59:
        return None
    return hour, minute


def read_clock(text: str) -> tuple[int, int] | None:
    """The whole of `text` as a time of day ('8:30', '8点半', '下午3点', '8pm'), else None."""
    m = _CLOCK.fullmatch(text.strip())
    return _clock_value(m) if m else None


def _extract_time(text: str) -> tuple[tuple[int, int] | None, str]:
    """Find one time of day in `text`; return it and the text without it."""
    m = _CLOCK.search(text)
    if m:
        value = _clock_value(m)
        if value is None:
            raise UserError("error.bad_date", text=m.group().strip())
    else:
        m = _PERIOD_ONLY.search(text)
        if not m or _PERIODS[m.group().lower()][1] is None:
            return None, text
        value = (_PERIODS[m.group().lower()][1], 0)
    return value, f"{text[:m.start()]} {text[m.end():]}"


# --- durations ----------------------------------------------------------------

_EN_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
               "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
_UNITS = {
    "minute": ("m", "min", "mins", "minute", "minutes", "分钟", "分"),
    "hour": ("h", "hr", "hrs", "hour", "hours", "小时", "个小时", "钟头", "个钟头"),
    "day": ("d", "day", "days", "天", "日"),
    "week": ("w", "wk", "wks", "week", "weeks", "周", "个周", "星期", "个星期", "礼拜", "个礼拜"),
    "month": ("mo", "mos", "month", "months", "个月"),
}
_UNIT_OF = {word: unit for unit, words in _UNITS.items() for word in words}
_EN_UNIT = "|".join(sorted((w for w in _UNIT_OF if w.isascii()), key=len, reverse=True))
_CN_UNIT = "|".join(sorted((w for w in _UNIT_OF if not w.isascii()), key=len, reverse=True))
_EN_DURATION = re.compile(
    rf"(?P<in>in\s+)?(?:(?P<n>[0-9]{{1,4}})\s*|(?P<word>{'|'.join(_EN_NUMBERS)}|half an?)\s+)"
    rf"(?P<unit>{_EN_UNIT})"
    r"(?:\s+(?P<dir>ago|later|from now))?",
    re.I,
)
# Chinese needs the direction word: 3日 alone is the 3rd of the month.
_CN_DURATION = re.compile(rf"(?P<n>{NUM}|半)\s*(?P<unit>{_CN_UNIT})\s*(?P<dir>之?后|以后|之?前|以前)")


@dataclass(frozen=True)
class _Duration:
    amount: int
    unit: str
    sign: int | None  # +1 / -1 when the text says which way, None for a bare '3d'


def _read_duration(text: str) -> _Duration | None:
    """'3d', 'in 2 weeks', '3 days ago', '3天后', '半小时后', '一周前' → a duration."""
    if m := _EN_DURATION.fullmatch(text):
        word, unit = (m["n"] or m["word"]).lower(), _UNIT_OF[m["unit"].lower()]
        direction = (m["dir"] or "").lower()
        if m["in"] and direction == "ago":
            return None
        sign = -1 if direction == "ago" else 1 if m["in"] or direction else None
    elif m := _CN_DURATION.fullmatch(text):
        word, unit = m["n"], _UNIT_OF[m["unit"]]
        sign = -1 if "前" in m["dir"] else 1
    else:
        return None
    if word.startswith("half") or word == "半":
        return _Duration(30, "minute", sign) if unit == "hour" else None
    amount = _EN_NUMBERS.get(word) or cn_number(word)
    return _Duration(amount, unit, sign) if amount else None


def _add_months(day: date, months: int) -> date:
    year, month = divmod(day.month - 1 + months, 12)
    year += day.year
    return date(year, month + 1, min(day.day, monthrange(year, month + 1)[1]))


def _shift_day(day: date, amount: int, unit: str) -> date | None:
    if unit == "day":
        return day + timedelta(days=amount)
    if unit == "week":
        return day + timedelta(weeks=amount)
    if unit == "month":
        return _add_months(day, amount)
    return None


# --- dates --------------------------------------------------------------------

_RELATIVE_DAYS = {
    "today": 0, "今天": 0, "今日": 0,
    "tomorrow": 1, "tmr": 1, "tmrw": 1, "明天": 1, "明日": 1,
    "day after tomorrow": 2, "the day after tomorrow": 2, "后天": 2, "大后天": 3,
    "yesterday": -1, "昨天": -1, "昨日": -1,
    "day before yesterday": -2, "the day before yesterday": -2, "前天": -2, "大前天": -3,
}
_ALIASES = [  # shorthands that carry both a day and a time of day
    (re.compile(r"\btonight\b", re.I), "today night"),
    (re.compile("今晚"), "今天晚上"), (re.compile("明晚"), "明天晚上"),
    (re.compile("昨晚"), "昨天晚上"), (re.compile("明早"), "明天早上"),
]
_CONNECTORS = re.compile(r"^(?:(?:on|by|at)\s+|在)|(?:\s+(?:at|on)|的)$", re.I)

_EN_WEEKDAYS = {"monday": 0, "mon": 0, "tuesday": 1, "tue": 1, "tues": 1,
                "wednesday": 2, "wed": 2, "thursday": 3, "thu": 3, "thur": 3,
                "thurs": 3, "friday": 4, "fri": 4, "saturday": 5, "sat": 5,
                "sunday": 6, "sun": 6}
_EN_WEEKDAY = re.compile(
    rf"(?:(?P<mod>next|this|last|coming)\s+)?(?P<day>{'|'.join(_EN_WEEKDAYS)})", re.I)
_CN_WEEKDAY_NUMS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6,
                    "1": 0, "2": 1, "3": 2, "4": 3, "5": 4, "6": 5, "7": 6}
_CN_WEEK = "(?:周|週|星期|礼拜|禮拜)"
_CN_WEEKDAY = re.compile(rf"(?P<mod>下下个?|下个?|这个?|本|上上个?|上个?)?{_CN_WEEK}(?P<day>[一二三四五六日天1-7])")
# a week offset: 0 this Mon–Sun week, 1 the next one, -1 the last one
_CN_WEEK_OFFSETS = {"下下": 2, "下": 1, "这": 0, "本": 0, "上上": -2, "上": -1}
_EN_WEEK_OFFSETS = {"next": 1, "this": 0}

_WEEKS_MONTHS = {
    "next week": ("week", 1), "last week": ("week", -1), "this week": ("week", 0),
    "next month": ("month", 1), "last month": ("month", -1),
}
_CN_WEEK_MONTH = re.compile(rf"(?P<mod>下下|下|这|本|上上|上)个?(?P<unit>{_CN_WEEK}|月)")

_ISO_DATE = re.compile(r"(?P<y>[0-9]{4})[-/.](?P<m>[0-9]{1,2})[-/.](?P<d>[0-9]{1,2})")
_SHORT_DATE = re.compile(r"(?P<m>[0-9]{1,2})[-/.](?P<d>[0-9]{1,2})(?:[-/.](?P<y>[0-9]{4}|[0-9]{2}))?")
_CN_DATE = re.compile(
    rf"(?:(?P<y>[0-9]{{4}}|[零〇一二三四五六七八九]{{4}})\s*年\s*)?"
    rf"(?P<m>[0-9]{{1,2}}|{CN_NUM})\s*月\s*(?P<d>[0-9]{{1,2}}|{CN_NUM})\s*[日号號]?"
)
_CN_DAY_OF_MONTH = re.compile(rf"(?P<d>[0-9]{{1,2}}|{CN_NUM})\s*[日号號]")


def _safe_date(year: int | None, month: int | None, day: int | None) -> date | None:
    if year not in YEARS or month is None or day is None:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _weekday(text: str, today: date) -> list[date] | None:
    """friday, next monday, 周五, 下周五, 这周五, 上周一.

    下周五 / 'next friday' is Friday of the next Mon–Sun week; 'last friday' is
    the most recent one before today; a bare weekday is left to the caller's
    future/past preference (this week's or the neighbouring one).
    """
    if m := _EN_WEEKDAY.fullmatch(text):
        weekday, mod = _EN_WEEKDAYS[m["day"].lower()], (m["mod"] or "").lower()
        if mod in _EN_WEEK_OFFSETS:
            return [_monday(today) + timedelta(weeks=_EN_WEEK_OFFSETS[mod], days=weekday)]
        nearby = [today + timedelta(days=k) for k in range(-7, 8)]
        if mod == "last":
            nearby = [d for d in nearby if d < today]
            return [max(d for d in nearby if d.weekday() == weekday)]
        if mod == "coming":
            nearby = [d for d in nearby if d > today]
            return [min(d for d in nearby if d.weekday() == weekday)]
        return [d for d in nearby if d.weekday() == weekday]
    if m := _CN_WEEKDAY.fullmatch(text):
        weekday = _CN_WEEKDAY_NUMS[m["day"]]
        if m["mod"]:
            offset = _CN_WEEK_OFFSETS[m["mod"].rstrip("个")]
            return [_monday(today) + timedelta(weeks=offset, days=weekday)]
        return [today + timedelta(days=k) for k in range(-7, 8)
                if (today + timedelta(days=k)).weekday() == weekday]
    return None


def _week_or_month(text: str, today: date) -> list[date] | None:
    """next week / 下周 → next Monday; next month / 下个月 → the same day next month."""
    if (found := _WEEKS_MONTHS.get(text.lower())) is None:
        m = _CN_WEEK_MONTH.fullmatch(text)
        if not m:
            return None
        found = ("month" if m["unit"] == "月" else "week", _CN_WEEK_OFFSETS[m["mod"]])
    unit, offset = found
    if unit == "week":
        return [_monday(today) + timedelta(weeks=offset)]
    return [_add_months(today, offset)]


def _numeric_date(text: str, today: date) -> list[date] | None:
    """2026-12-01, 2026/12/1, 12/01, 12/01/2026 (month first unless that cannot be)."""
    if m := _ISO_DATE.fullmatch(text):
        day = _safe_date(int(m["y"]), int(m["m"]), int(m["d"]))
        return [day] if day else None
    if m := _SHORT_DATE.fullmatch(text):
        month, day = int(m["m"]), int(m["d"])
        if month > 12 >= day:
            month, day = day, month
        if m["y"]:
            year = int(m["y"]) + (2000 if len(m["y"]) == 2 else 0)
            return _listed(_safe_date(year, month, day))
        return _around_years(month, day, today)
    return None


def _chinese_date(text: str, today: date) -> list[date] | None:
    """2026年12月1日, 12月1号, 12月1, 15号."""
    if m := _CN_DATE.fullmatch(text):
        month, day = cn_number(m["m"]), cn_number(m["d"])
        if m["y"]:
            return _listed(_safe_date(cn_number(m["y"]), month, day))
        return _around_years(month, day, today)
    if m := _CN_DAY_OF_MONTH.fullmatch(text):
        first = today.replace(day=1)
        months = (_add_months(first, k) for k in (-1, 0, 1))
        found = [_safe_date(d.year, d.month, cn_number(m["d"])) for d in months]
        return [d for d in found if d] or None
    return None


def _listed(day: date | None) -> list[date] | None:
    return [day] if day else None


def _around_years(month: int | None, day: int | None, today: date) -> list[date] | None:
    """A month and day without a year: last year's, this year's and next year's."""
    found = [_safe_date(today.year + k, month, day) for k in (-1, 0, 1)]
    return [d for d in found if d] or None


def _relative_duration(text: str, today: date, past: bool) -> list[date] | None:
    """'3天后下午3点' / 'in 3 days 10am': a day-sized duration used as a date."""
    duration = _read_duration(text)
    if duration is None:
        return None
    sign = duration.sign or (-1 if past else 1)
    return _listed(_shift_day(today, sign * duration.amount, duration.unit))


def _day_candidates(text: str, today: date, past: bool) -> list[date] | None:
    """The dates `text` may mean (several when the year or week is implied), or None."""
    if text.lower() in _RELATIVE_DAYS:
        return [today + timedelta(days=_RELATIVE_DAYS[text.lower()])]
    for rule in (_weekday, _week_or_month, _numeric_date, _chinese_date):
        if (found := rule(text, today)) is not None:
            return found
    return _relative_duration(text, today, past)


# --- putting it together --------------------------------------------------------

def _utc(day: date, hour_minute: tuple[int, int], tz: ZoneInfo) -> datetime:
    """Local wall time → UTC (zoneinfo resolves DST for that very date)."""
    return datetime.combine(day, time(*hour_minute), tzinfo=tz).astimezone(timezone.utc)


def _pick(moments: list[datetime], now: datetime, past: bool) -> datetime:
    """The earliest moment not before now (latest not after now when `past`)."""
    moments = sorted(moments)
    if past:
        return max((m for m in moments if m <= now), default=moments[0])
    return min((m for m in moments if m >= now), default=moments[-1])


def _shift_now(now: datetime, tz: ZoneInfo, duration: _Duration, past: bool) -> datetime:
    """now ± duration: hours and minutes on the clock, days and up on the calendar."""
    amount = (duration.sign or (-1 if past else 1)) * duration.amount
    if duration.unit in ("minute", "hour"):
        return now.astimezone(timezone.utc) + timedelta(**{f"{duration.unit}s": amount})
    local = now.astimezone(tz)
    day = _shift_day(local.date(), amount, duration.unit)
    return _utc(day, (local.hour, local.minute), tz)


_NUMBERS_ONLY = re.compile(r"[0-9]+(?:\s*[/.\-]\s*[0-9]+)*")


def _dateparser(text: str, local_now: datetime, past: bool) -> tuple[date, tuple[int, int] | None] | None:
    """The English long tail ('dec 1st', 'a week from now'); None when it cannot tell.

    Numbers alone (`32/13`, `2026/13/01`) are left to our own rules: dateparser
    would take an impossible day or month for a year and still give a date.
    """
    if _NUMBERS_ONLY.fullmatch(text):
        return None
    from dateparser.date import DateDataParser  # slow import, needed only here

    settings = {
        "RELATIVE_BASE": local_now.replace(tzinfo=None),
        "PREFER_DATES_FROM": "past" if past else "future",
        "RETURN_TIME_AS_PERIOD": True,
        "PARSERS": ["relative-time", "absolute-time"],
    }
    try:
        data = DateDataParser(languages=["en", "zh"], settings=settings).get_date_data(text)
    except Exception:  # dateparser raises all sorts of errors on odd input
        return None
    # 'month' and 'year' periods ('may', '3') are too vague to schedule anything on
    if data is None or data.date_obj is None or data.period not in ("day", "week", "time"):
        return None
    moment = data.date_obj
    if moment.tzinfo is not None:
        moment = moment.astimezone(local_now.tzinfo)
    if moment.year not in YEARS:
        return None
    return moment.date(), (moment.hour, moment.minute) if data.period == "time" else None


def _normalise(text: str) -> str:
    text = " ".join(text.replace(",", " ").split()).strip(" .。")
    for pattern, replacement in _ALIASES:
        text = pattern.sub(replacement, text)
    return text


def parse_when(text: str, *, now: datetime, tz: ZoneInfo, past: bool = False) -> When:
    """Read a folded date/time in zone `tz`; see `parsing.parse_when` for the forms."""
    if len(text) > MAX_DATE_LEN:
        raise UserError("error.bad_date", text=text[:40] + "…")
    text = _normalise(text)
    if not text:
        raise UserError("error.bad_date", text=text)
    local_now = now.astimezone(tz)
    if duration := _read_duration(text):
        return When(_shift_now(now, tz, duration, past), explicit_time=True)

    clock, rest = _extract_time(text)
    rest = _CONNECTORS.sub("", rest.strip()).strip()
    if clock is not None and not rest:
        days = [local_now.date() + timedelta(days=k) for k in (-1, 0, 1)]
    else:
        days = _day_candidates(rest, local_now.date(), past)
    if days is None:
        found = _dateparser(rest if clock else text, local_now, past)
        if found is None:
            raise UserError("error.bad_date", text=rest if clock else text)
        day, parsed_clock = found
        days, clock = [day], clock or parsed_clock
    moments = [_utc(day, clock or DEFAULT_TIME, tz) for day in days]
    return When(_pick(moments, now, past), explicit_time=clock is not None)
