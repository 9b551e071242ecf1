"""English days: 'tomorrow', 'friday after next', 'wednesday of next week', '3 fridays from now',
'march 3rd 2015', 'the 1st of march', 'Fri, Jul 18', '20th of next month', 'first tuesday of
october', 'last day of october 2015', 'end of month', 'this weekend', '10/31/74'.

`read_day` takes normalised text with the time of day and the zone already taken out.
Rules written down (README, "Dates"): 'next friday' is Friday of next Mon–Sun week; a
bare weekday is the coming one (the last one for `at:`); 'next month' / 'March' is its
1st and 'next week' its Monday, and the reply says so; 'end of week' is Friday; a
two-digit year is at most ten years ahead, else of the last century ('10/31/74' → 1974).
"""
from __future__ import annotations

import re
from datetime import date, timedelta

from handlers.dates import days, durations
from handlers.dates.days import EN_MONTHS, EN_WEEKDAYS, Day, day
from handlers.dates.durations import shift_day
from handlers.dates.words import EN_NUMBER, EN_ORDINAL, en_count, en_ordinal

_WD = "|".join(sorted(EN_WEEKDAYS, key=len, reverse=True))
_WD_DOT = rf"(?:{_WD})\.?"
_MONTH = "|".join(sorted(EN_MONTHS, key=len, reverse=True))
_MON = rf"(?:{_MONTH})\.?"

_RELATIVE = {"today": 0, "tonight": 0, "tomorrow": 1, "tomorrows": 1, "tmr": 1, "tmrw": 1, "tomorow": 1,
             "day after tomorrow": 2, "the day after tomorrow": 2, "yesterday": -1,
             "day before yesterday": -2, "the day before yesterday": -2}
_NEXT = r"next|the\s+following|following|the\s+next|upcoming|the\s+coming|coming"
_LAST = r"last|past|previous|the\s+previous|the\s+last|the\s+past"
_THIS = r"this|current|the\s+current|the"


def _offset(word: str) -> int:
    word = word.strip()
    if re.fullmatch(_NEXT, word):
        return 1
    if re.fullmatch(_LAST, word):
        return -1
    return 0


def _year(text: str | None, today: date) -> int | None:
    """'2015' → 2015; '15' / '74' → within ten years ahead, else the century before."""
    if text is None:
        return None
    year = int(text)
    if len(text) == 2:
        year += 2000 if 2000 + year <= today.year + 10 else 1900
    return year


# --- weekdays -------------------------------------------------------------------------------

_WEEKDAY_FORMS = [
    (re.compile(rf"(?P<mod>this|next|last|coming|upcoming|past|previous)?\s*(?P<wd>{_WD_DOT})"), "plain"),
    (re.compile(rf"(?P<wd>{_WD_DOT})\s+after\s+next"), "after_next"),
    (re.compile(rf"(?P<wd>{_WD_DOT})\s+(?:of\s+|on\s+|from\s+)?(?P<week>{_NEXT}|{_LAST}|{_THIS})\s+week"), "of_week"),
    (re.compile(rf"(?P<week>{_NEXT}|{_LAST}|{_THIS})\s+week'?s\s+(?P<wd>{_WD_DOT})"), "of_week"),
    (re.compile(rf"(?P<n>[0-9]{{1,2}}|{EN_NUMBER})\s+(?P<wd>{_WD})s\s+(?P<dir>from\s+now|hence|ago|back)"), "counted"),
]


def _weekday(text: str, today: date, past: bool) -> Day | None:
    for pattern, kind in _WEEKDAY_FORMS:
        if not (m := pattern.fullmatch(text)):
            continue
        weekday = EN_WEEKDAYS[m["wd"].rstrip(".")]
        if kind == "plain":
            mod = m["mod"] or ""
            if mod == "next":
                return day(days.week_day(today, 1, weekday))
            if mod == "this":  # this week's, or the coming one once this week's has passed
                this_week = days.week_day(today, 0, weekday)
                return day(this_week if this_week >= today else days.counted_weekday(today, weekday, 1))
            if mod in ("coming", "upcoming"):
                return day(days.counted_weekday(today, weekday, 1))
            if mod in ("last", "past", "previous"):
                return day(days.counted_weekday(today, weekday, -1))
            return days.nearby_weekday(today, weekday, past)
        if kind == "after_next":
            return day(days.counted_weekday(today, weekday, 2))
        if kind == "of_week":
            return day(days.week_day(today, _offset(m["week"]), weekday))
        count = int(en_count(m["n"]) or 0)
        if not 0 < count < 100:
            return None
        return day(days.counted_weekday(today, weekday, -count if m["dir"] in ("ago", "back") else count))
    return None


# --- weeks, months, weekends, ends -----------------------------------------------------------

_WEEK = re.compile(rf"(?P<mod>{_NEXT}|{_LAST}|{_THIS})\s+week|(?P<after>the\s+)?week\s+after\s+next")
_MONTH_REF = re.compile(rf"(?P<mod>{_NEXT}|{_LAST}|{_THIS})\s+month")
_MONTH_NAME = re.compile(rf"(?:(?P<mod>next|this|last)\s+|in\s+)?(?P<m>{_MON})(?:\s+(?P<y>[0-9]{{4}}))?"
                         rf"|(?P<m2>{_MON})\s+after\s+next")
#: Month words that alone are more often something else ('may' the verb, 'mar', 'jan' a name).
_NOT_ALONE = {name for name in EN_MONTHS if len(name) <= 4 and name != "june" and name != "july"} | {"may"}
_WEEKEND = re.compile(rf"(?:(?P<mod>{_NEXT}|{_LAST}|{_THIS})\s+)?weekend")
_END = re.compile(rf"(?:the\s+)?(?P<which>end|beginning|start)\s+of\s+(?:(?P<mod>{_NEXT}|{_LAST}|{_THIS})\s+)?"
                  rf"(?P<unit>month|week|year)")


def _periods(text: str, today: date, past: bool) -> Day | None:
    if m := _WEEK.fullmatch(text):
        offset = 2 if not m["mod"] else _offset(m["mod"])
        if offset == 0:
            return day(today, assumed="today")
        return day(days.week_day(today, offset, 0), assumed="monday")
    if m := _MONTH_REF.fullmatch(text):
        offset = _offset(m["mod"])
        if offset == 0:
            return day(today, assumed="today")
        first = shift_day(today.replace(day=1), offset, "month")
        return day(first, assumed="first")
    if (m := _MONTH_NAME.fullmatch(text)) and text not in _NOT_ALONE:
        month = EN_MONTHS[(m["m"] or m["m2"]).rstrip(".")]
        if m["y"]:
            return day(days.safe_date(int(m["y"]), month, 1), assumed="first")
        firsts = [d for k in (-1, 0, 1, 2) if (d := days.safe_date(today.year + k, month, 1))]
        ahead = [d for d in firsts if d > today]
        if m["m2"]:
            return day(days.safe_date(ahead[0].year + 1, month, 1), assumed="first")
        if m["mod"] == "next":
            return day(ahead[0], assumed="first")
        if m["mod"] == "last":
            return day(max(d for d in firsts if d <= today), assumed="first")
        if today.month == month:
            return day(today, assumed="today")
        return Day(tuple(firsts), "first")
    if m := _WEEKEND.fullmatch(text):
        offset = _offset(m["mod"]) if m["mod"] else 0
        saturday = days.week_day(today, offset, 5)
        if offset == 0 and saturday + timedelta(days=1) < today:
            saturday += timedelta(weeks=1)
        return day(saturday, assumed="saturday")
    if m := _END.fullmatch(text):
        offset = _offset(m["mod"]) if m["mod"] else 0
        start = m["which"] != "end"
        if m["unit"] == "week":
            return day(days.week_day(today, offset, 0 if start else 4), assumed="monday" if start else "friday")
        if m["unit"] == "month":
            first = shift_day(today.replace(day=1), offset, "month")
            return day(first if start else days.nth_day(first.year, first.month, -1),
                       assumed="first" if start else "last_day")
        year = today.year + offset
        return day(days.safe_date(year, 1, 1) if start else days.safe_date(year, 12, 31))
    return None


# --- dates with a month name or numbers -------------------------------------------------------

_DOM = rf"(?P<d>{EN_ORDINAL}|[0-9]{{1,2}})"
_SEP = r"(?:\s+|\s*[-/.]\s*|(?<=[a-z])(?=[0-9])|(?<=[0-9])(?=[a-z]))"
_MONTH_DAY = [
    re.compile(rf"(?P<m>{_MON}){_SEP}(?:the\s+)?{_DOM}(?:{_SEP}(?P<y>[0-9]{{4}}|[0-9]{{2}}))?"),
    re.compile(rf"(?:the\s+)?{_DOM}(?:\s+day)?(?:\s+of)?{_SEP}(?P<m>{_MON})(?:{_SEP}(?P<y>[0-9]{{4}}|[0-9]{{2}}))?"),
]
_DOM_ALONE = re.compile(rf"(?:the\s+)?(?P<d>{EN_ORDINAL})|the\s+(?P<n>[0-9]{{1,2}})")
_DOM_OF_MONTH = re.compile(rf"(?:the\s+)?(?P<d>{EN_ORDINAL}|[0-9]{{1,2}})(?:\s+day)?\s+of\s+(?:the\s+)?"
                           rf"(?P<mod>next|this|current|previous|last|coming|following)\s+month")
_NTH = re.compile(
    rf"(?:the\s+)?(?P<n>{EN_ORDINAL}|last)(?:\s+(?P<last>last))?\s+(?P<what>{_WD}|day)\s+(?:of|in)\s+(?:the\s+)?"
    rf"(?:(?P<m>{_MON})(?:\s+(?P<y>[0-9]{{4}}))?|(?P<mod>next|this|current|previous|last|coming)?\s*month)")
_ISO = re.compile(r"(?P<y>[0-9]{4})\s*[-/.]\s*(?P<m>[0-9]{1,2})\s*[-/.]\s*(?P<d>[0-9]{1,2})")
_NUMERIC = re.compile(r"(?P<m>[0-9]{1,2})\s*(?P<sep>[-/.])\s*(?P<d>[0-9]{1,2})(?:\s*(?P=sep)\s*(?P<y>[0-9]{4}|[0-9]{2}))?")


def _dom(text: str) -> int | None:
    return int(text) if text.isdigit() else en_ordinal(text)


def month_day(text: str, today: date) -> tuple[Day, int, int, bool] | None:
    """A date with a month name or in numbers: (candidates, month, day, year given)."""
    for pattern in _MONTH_DAY:
        if m := pattern.fullmatch(text):
            month, dom = EN_MONTHS[m["m"].rstrip(".")], _dom(m["d"])
            if dom is None:
                return None
            if m["y"]:
                return day(days.checked_date(_year(m["y"], today), month, dom, text)), month, dom, True
            found = days.around_years(month, dom, today) or day(days.checked_date(None, month, dom, text))
            return found, month, dom, False
    if m := _ISO.fullmatch(text):
        month, dom = int(m["m"]), int(m["d"])
        return day(days.checked_date(int(m["y"]), month, dom, text)), month, dom, True
    if m := _NUMERIC.fullmatch(text):
        month, dom = int(m["m"]), int(m["d"])
        if month > 12 >= dom:
            month, dom = dom, month  # 31/10: the day comes first
        if m["y"]:
            return day(days.checked_date(_year(m["y"], today), month, dom, text)), month, dom, True
        found = days.around_years(month, dom, today) or day(days.checked_date(None, month, dom, text))
        return found, month, dom, False
    return None


def _dated(text: str, today: date, past: bool) -> Day | None:
    """Dates, with or without a weekday that must agree ('Fri, Jul 18', 'Tuesday the 19th')."""
    weekday = None
    if m := re.fullmatch(rf"(?P<wd>{_WD_DOT})\s+(?P<rest>.+)|(?P<rest2>.+?)\s+(?P<wd2>{_WD_DOT})", text):
        rest, word = (m["rest"], m["wd"]) if m["wd"] else (m["rest2"], m["wd2"])
        if month_day(rest, today) or _DOM_ALONE.fullmatch(rest):
            weekday, text = EN_WEEKDAYS[word.rstrip(".")], rest
    if found := month_day(text, today):
        dates, month, dom, year_given = found
        if weekday is None:
            return dates
        return days.agreeing(dates, weekday, today, text, month=month, dom=dom, year_given=year_given)
    if m := _DOM_ALONE.fullmatch(text):
        dom = _dom(m.groupdict().get("d") or m["n"])
        found = days.around_months(dom, today) if dom else None
        if found is None:
            return None
        return found if weekday is None else days.agreeing(found, weekday, today, text, dom=dom)
    return None


def _of_month(text: str, today: date, past: bool) -> Day | None:
    if m := _DOM_OF_MONTH.fullmatch(text):
        first = shift_day(today.replace(day=1), _offset(m["mod"].replace("current", "this")), "month")
        return day(days.safe_date(first.year, first.month, _dom(m["d"]) or 0))
    if m := _NTH.fullmatch(text):
        n = -1 if m["n"] == "last" else en_ordinal(m["n"])
        if n is None or (m["last"] and m["n"] == "last"):
            return None
        n = -n if m["last"] else n
        if m["m"]:
            month = EN_MONTHS[m["m"].rstrip(".")]
            years = [int(m["y"])] if m["y"] else [today.year, today.year + 1]
        else:
            first = shift_day(today.replace(day=1), _offset(m["mod"] or "this"), "month")
            month, years = first.month, [first.year]
        for year in years:
            found = (days.nth_day(year, month, n) if m["what"] == "day"
                     else days.nth_weekday(year, month, EN_WEEKDAYS[m["what"]], n))
            if found and (m["y"] or not m["m"] or found >= today or year == years[-1]):
                return day(found)
    return None


# --- together ---------------------------------------------------------------------------------

def read_day(text: str, today: date, past: bool) -> Day | None:
    """The dates `text` may mean, or None when it is not an English date."""
    if text in _RELATIVE:
        return day(today + timedelta(days=_RELATIVE[text]))
    for rule in (_weekday, _of_month, _dated):
        if (found := rule(text, today, past)) is not None:
            return found
    return _periods(text, today, past) or day(durations.day_after(text, today, past))
