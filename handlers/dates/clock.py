"""Times of day, in English and Chinese: '3pm', '15h30', 'half past 3', 'a quarter to noon',
'at 3 15', 'nine fifty nine a m', '下午三点十五', '三点半', '晏晝三點踏三'.

The written rules (README, "Dates"):
- a period word shifts an hour that has no am/pm: afternoon, evening, night and
  晚上 add 12 to 1–11 ('tonight at 11' is 23:00, 'tomorrow afternoon at 5' is
  17:00); morning and 凌晨 keep it; evening or night at 12 is midnight;
- an hour with neither am/pm nor a period word is read in working hours: 1–6
  are afternoon ('三点', 'at 3:30' → 15:00, 15:30), 7–11 morning, 12 noon; 0 and
  13–23 are already unambiguous. The reply says so (`When.assumed`);
- a period word alone gives its own hour (morning 09:00, afternoon 15:00,
  evening 19:00, night 20:00);
- a Chinese minute written as one digit after 点, without 分, counts fives, as
  in Cantonese (三點三 / 三點踏三 / 三點三個字 is 3:15); 三点零三 is 3:03.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from handlers.dates.days import EN_WEEKDAYS
from handlers.dates.words import CN_NUM, EN_NUMBER_WORDS, cn_number
from handlers.errors import UserError

AM, PM, H24 = "am", "pm", "24h"


@dataclass(frozen=True)
class Clock:
    hour: int
    minute: int
    second: int = 0
    assumed: str | None = None  # "pm" / "am" when the working-hours rule chose
    next_day: bool = False  # midnight said as 'tonight at 12': the start of the next day
    period_day: int | None = None  # 'tonight', 'this morning' name today (0)
    period_only: bool = False  # no hour was written, only 'afternoon' / 下午


# --- periods ------------------------------------------------------------------------------

# period → (how it shifts an hour, its own hour when no hour is given)
_PERIODS: dict[str, tuple[str, int | None]] = {
    "凌晨": (AM, None), "早上": (AM, 9), "早晨": (AM, 9), "上午": (AM, 9), "早": (AM, 9),
    "中午": ("noon", 12), "下午": (PM, 15), "午后": (PM, 15), "傍晚": (PM, 18), "晚上": (PM, 20),
    "夜里": (PM, 21), "夜间": (PM, 21), "晚": (PM, 20), "半夜": (AM, None),
    "morning": (AM, 9), "afternoon": (PM, 15), "evening": (PM, 19), "night": (PM, 20),
    "tonight": (PM, 20), "tonite": (PM, 20),
}
_CN_PERIOD = "|".join(sorted((w for w in _PERIODS if not w.isascii()), key=len, reverse=True))
_EN_PERIOD = re.compile(
    r"\b(?P<this>this\s+|early\s+|late\s+)?(?:in\s+the\s+|in\s+|at\s+)?"
    r"(?P<p>morning|afternoon|evening|night|tonight|tonite)\b")
_CN_PERIOD_RE = re.compile(_CN_PERIOD)
_TODAY_PERIODS = ("tonight", "tonite")


def _find_period(text: str) -> tuple[re.Match | None, str | None, bool]:
    """The period word in `text`, its name, and whether it names today ('this morning', 'tonight')."""
    if m := _EN_PERIOD.search(text):
        this = bool(m["this"] and m["this"].strip() == "this") or m["p"] in _TODAY_PERIODS
        return m, m["p"], this
    if m := _CN_PERIOD_RE.search(text):
        return m, m.group(), False
    return None, None, False


# --- English ------------------------------------------------------------------------------

_AMPM = r"(?P<ap>[ap])\.?\s?m\b\.?|in\s+the\s+(?P<ap2>[ap])m\b"
_HOUR_WORDS = {w: n for w, n in EN_NUMBER_WORDS.items() if 1 <= n <= 12 and " " not in w and "-" not in w}
_HOUR_WORD = "|".join(sorted(_HOUR_WORDS, key=len, reverse=True))
_MINUTE_WORD = "|".join(sorted((re.escape(w) for w, n in EN_NUMBER_WORDS.items() if 10 <= n <= 59),
                               key=len, reverse=True))
_ONE_TO_NINE = "|".join(w for w, n in EN_NUMBER_WORDS.items() if 1 <= n <= 9 and " " not in w and "-" not in w)
_HOUR_SPEC = (rf"(?:noon|midnight|midday|(?:[0-9]{{1,2}}|{_HOUR_WORD})"
              rf"(?:\s*(?:[ap]\.?\s?m\b\.?|h\b|o'?clock))?)")

_EN_PATTERNS = [
    # a quarter past 3pm, 20 minutes to 2pm, twenty after 3pm, half past three pm, 15 to noon
    ("relative", re.compile(
        rf"\b(?:(?P<n>[0-9]{{1,2}}|{_MINUTE_WORD}|{_ONE_TO_NINE})\s+(?:minutes?\s+|mins?\s+)?"
        rf"|(?P<q>a\s+quarter|quarter|three\s+quarters|half)\s+)"
        rf"(?P<rel>past|after|to|till|til|before|from)\s+(?P<hour>{_HOUR_SPEC})")),
    # 15:23:24, 3:30 pm, 3:18a, 9:01:10 AM
    ("digital", re.compile(
        rf"(?<![0-9:./-])(?P<h>[0-9]{{1,2}}):(?P<m>[0-9]{{2}})(?::(?P<s>[0-9]{{2}}))?"
        rf"(?:\s*(?:{_AMPM}|(?P<ap1>[ap])\b\.?))?(?![0-9:])")),
    # 15h00, 15h, 3h18 (a bare '3h' is a duration and read before this)
    ("h", re.compile(r"(?<![0-9:./-])(?P<h>[0-9]{1,2})h(?P<m>[0-9]{2})?\b")),
    # 330 p.m., 1030am
    ("compact", re.compile(rf"(?<![0-9:./-])(?P<h>[0-9]{{1,2}})(?P<m>[0-9]{{2}})\s*(?:{_AMPM})")),
    # 3pm, 3 p.m., 3 oclock pm, 3 in the AM
    ("hour", re.compile(rf"(?<![0-9:./-])(?P<h>[0-9]{{1,2}})\s*(?:o'?clock\s*)?(?:{_AMPM})")),
    # at 3p, at 3p.
    ("at_letter", re.compile(r"\bat\s+(?P<h>[0-9]{1,2})(?P<ap1>[ap])\b\.?")),
    # nine fifty nine a m, twelve oh three pm, three o'clock, at three twenty, eight tonight
    ("words", re.compile(
        rf"(?P<at>\bat\s+)?\b(?P<h>{_HOUR_WORD})\b(?:[\s-]+(?:(?:oh|o|ou|zero)[\s-]+(?P<m0>{_ONE_TO_NINE})"
        rf"|(?P<m>{_MINUTE_WORD}))\b)?(?:\s*(?:{_AMPM}|(?P<oclock>o'?clock)))?")),
    # 3 o'clock
    ("oclock", re.compile(r"(?<![0-9:./-])(?P<h>[0-9]{1,2})\s*o'?clock\b")),
    # at 3 15, at 1030, at 730, at 3 — not a phone number (at 650.650.6500)
    ("at_digits", re.compile(
        r"\bat\s+(?P<h>[0-9]{1,2})(?:\s+(?P<m>[0-9]{2})|(?P<m2>[0-9]{2}))?(?![0-9])(?!\s*[:/.\-][0-9])")),
    ("noon", re.compile(r"\b(?:the\s+)?(?P<w>noon|midday|mid\s+day|midnight)\b")),
    # 8 tonight, 9 tomorrow evening, 3 in the morning: a bare number beside a day or period word
    ("beside", re.compile(r"(?:^|(?<=\s))(?P<h>[0-9]{1,2})(?=\s+(?:in\s+the\s+|this\s+|tomorrow\b|today\b|"
                          r"tonight\b|tonite\b))")),
    # tomorrow 9, tonight 8: the same, after the word
    ("after_day", re.compile(r"(?<=\s)(?P<h>[0-9]{1,2})$")),
    # 15h, 19h: past 12, a bare 'h' is the hour on a 24-hour clock (a bare '3h' is three hours)
    ("h24", re.compile(r"^(?P<h>1[3-9]|2[0-3])h$")),
    # half three (British: 3:30)
    ("half", re.compile(rf"\bhalf\s+(?P<h>[0-9]{{1,2}}|{_HOUR_WORD})\b(?!\s+(?:an?\s+)?hours?)")),
]


_DAY_WORDS = {"tomorrow", "today", "tonight", "tonite", "tmrw", "tmr", "morning", "afternoon", "evening"} | set(EN_WEEKDAYS)


def _number(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.isdigit() else EN_NUMBER_WORDS.get(text)


def _ampm(m: re.Match) -> str | None:
    letter = (m.groupdict().get("ap") or m.groupdict().get("ap2") or m.groupdict().get("ap1") or "")
    return {"a": AM, "p": PM}.get(letter)


def _hour_spec(text: str) -> tuple[int, str | None] | None:
    """'3pm', '15h', 'noon', 'three' → (hour, am/pm or None)."""
    text = text.strip()
    if text in ("noon", "midday"):
        return 12, PM
    if text == "midnight":
        return 0, AM
    m = re.fullmatch(rf"(?P<h>[0-9]{{1,2}}|{_HOUR_WORD})\s*(?:(?P<ap>[ap])\.?\s?m\b\.?|h|o'?clock)?", text)
    if not m or (hour := _number(m["h"])) is None:
        return None
    return hour, {"a": AM, "p": PM}.get(m["ap"] or "")


def _english(m: re.Match, kind: str) -> tuple[int, int, int, str | None] | None:
    """(hour, minute, second, marker) of an English clock match; the marker is am, pm,
    H24 (already a 24-hour time) or None (for the period word or the working-hours rule)."""
    g = m.groupdict()
    if kind == "relative":
        spec = _hour_spec(g["hour"])
        q = " ".join((g["q"] or "").replace("a ", "").split())
        minutes = {"quarter": 15, "half": 30, "three quarters": 45}.get(q) if q else _number(g["n"])
        if spec is None or minutes is None or not 0 < minutes < 60:
            return None
        hour, ampm = spec
        sign = -1 if g["rel"] in ("to", "till", "til", "before") else 1
        if ampm:
            total = (hour % 12 + (12 if ampm == PM else 0)) * 60 + sign * minutes
            return total // 60 % 24, total % 60, 0, H24
        total = hour * 60 + sign * minutes
        if hour > 24 or (hour == 24 and sign > 0):  # no clock reads 24:15
            return None
        if hour == 0 or hour > 12:  # a 24-hour clock: 'half to 0' is 23:30, 'quarter to 15' 14:45
            return total // 60 % 24, total % 60, 0, H24
        return (total // 60) or 12, total % 60, 0, None
    if kind == "noon":
        return (0, 0, 0, H24) if g["w"] == "midnight" else (12, 0, 0, H24)
    if kind == "half":
        hour = _number(g["h"])
        return (hour, 30, 0, None) if hour is not None else None
    if kind == "words":
        if not (g["at"] or g.get("ap") or g.get("ap2") or g["oclock"]) and not _find_period(m.string)[0]:
            return None  # 'three twenty' alone is not a time (Duckling's negative corpus)
        minute = _number(g["m0"] or g["m"] or "0")
        return _HOUR_WORDS[g["h"]], minute, 0, _ampm(m)
    if kind == "after_day" and m.string[:m.start()].split()[-1] not in _DAY_WORDS:
        return None
    hour = int(g["h"])
    minute = int(g.get("m") or g.get("m2") or 0)
    marker = _ampm(m) or (H24 if kind in ("h", "h24") or hour == 0 or hour > 12 or g["h"].startswith("0") else None)
    return hour, minute, int(g.get("s") or 0), marker


# --- Chinese ------------------------------------------------------------------------------

_CN_CLOCK = re.compile(
    # 3点, 十点半, 10点15分, 8点一刻, 三点零五, 三点三(个字) / 踏三 — not the 二 of 周二 in 周二十点
    rf"(?<![0-9周期拜])(?P<h>[0-9]{{1,2}}|{CN_NUM})\s*[点时]钟?"
    rf"(?:(?P<half>[踏搭]?半)|(?P<quarter>[一二三])刻|(?P<step>[踏搭])?(?P<m>[0-9]{{1,2}}|{CN_NUM})"
    rf"(?P<zi>个字)?(?P<fen>分钟?)?)?"
)


def _chinese(m: re.Match) -> tuple[int, int, int, str | None] | None:
    hour = cn_number(m["h"])
    if m["half"]:
        minute = 30
    elif m["quarter"]:
        minute = 15 * cn_number(m["quarter"])
    elif m["m"]:
        minute = cn_number(m["m"])
        single = len(m["m"]) == 1 and not m["m"].isascii() and m["m"] not in "十零〇"
        if minute is not None and (m["step"] or m["zi"] or (single and not m["fen"])):
            minute *= 5  # Cantonese: a 字 is five minutes
    else:
        minute = 0
    if hour is None or minute is None:
        return None
    return hour, minute, 0, H24 if hour == 0 or hour > 12 or m["h"].startswith("0") else None


# --- together -----------------------------------------------------------------------------

def _shifted(hour: int, minute: int, second: int, ampm: str | None, period: str | None) -> Clock | None:
    """Apply am/pm, a period word, or the working-hours rule (see the module's docstring)."""
    next_day, assumed = False, None
    if ampm == H24:
        return Clock(hour, minute, second) if hour <= 23 and minute <= 59 and second <= 59 else None
    shift = ampm or (_PERIODS[period][0] if period else None)
    if ampm and not 1 <= hour <= 12:
        return None
    if shift == PM:
        if hour < 12:
            hour += 12
        elif hour == 12 and not ampm and period not in ("afternoon", "下午", "午后", "中午"):
            hour, next_day = 0, True  # 'tonight at 12'
    elif shift == AM and hour == 12:
        hour = 0
    elif shift == "noon" and hour < 6:
        hour += 12
    elif shift is None and 1 <= hour <= 6:
        hour, assumed = hour + 12, PM
    if hour > 23 or minute > 59 or second > 59:
        return None
    return Clock(hour, minute, second, assumed, next_day)


def find_clock(text: str) -> tuple[Clock | None, str]:
    """One time of day in `text` (with its period word), and the text without them.

    Raises UserError when something reads as a time but cannot be one ('25:00', '13pm').
    """
    match, value = None, None
    if m := _CN_CLOCK.search(text):
        match, value = m, _chinese(m)
    else:
        for kind, pattern in _EN_PATTERNS:
            for m in pattern.finditer(text):
                found = _english(m, kind)
                if found is not None or kind in ("digital", "hour", "compact"):
                    match, value = m, found
                    break
            if match:
                break
    rest = text if match is None else f"{text[:match.start()]} {text[match.end():]}"
    period_match, period, names_today = _find_period(rest)
    if period_match:
        rest = f"{rest[:period_match.start()]} {rest[period_match.end():]}"
    if match is not None:
        if value is None:
            raise UserError("error.bad_date", text=match.group().strip())
        clock = _shifted(*value, period)
        if clock is None:
            raise UserError("error.bad_date", text=match.group().strip())
    elif period and _PERIODS[period][1] is not None:
        clock = Clock(_PERIODS[period][1], 0, period_only=True)
    elif period:
        return None, text  # 凌晨 alone names no hour
    else:
        return None, text
    if names_today:
        clock = Clock(clock.hour, clock.minute, clock.second, clock.assumed, clock.next_day, 0, clock.period_only)
    return clock, " ".join(rest.split())


def read_clock(text: str) -> tuple[int, int] | None:
    """The whole of `text` as a time of day ('8:30', '8点半', '下午3点', '8pm'), else None."""
    try:
        clock, rest = find_clock(text.strip().lower())
    except UserError:
        return None
    return (clock.hour, clock.minute) if clock and not clock.period_only and not rest.strip() else None
