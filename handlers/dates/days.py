"""Calendar pieces both grammars use: weeks, weekdays, the n-th weekday of a month, and a
weekday that must agree with a date.

A day rule returns a `Day`: the dates the words may mean (several when the year or
week is implied; the reader picks the first ahead of now, or behind it for `at:`),
and what it assumed when the words named no single day (`first` for a month,
`monday` for a week), which the reply then shows.
"""
from __future__ import annotations

from calendar import monthrange
from dataclasses import dataclass
from datetime import date, timedelta

from handlers.errors import UserError

YEARS = range(1900, 2201)  # anything outside is a typo, and would overflow on conversion

EN_WEEKDAYS = {"monday": 0, "mon": 0, "tuesday": 1, "tue": 1, "tues": 1, "wednesday": 2, "wed": 2,
               "thursday": 3, "thu": 3, "thur": 3, "thurs": 3, "friday": 4, "fri": 4, "saturday": 5,
               "sat": 5, "sunday": 6, "sun": 6}
EN_MONTHS = {"january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4,
             "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9,
             "sep": 9, "sept": 9, "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12}


@dataclass(frozen=True)
class Day:
    dates: tuple[date, ...]
    assumed: str | None = None  # 'first' (of a month), 'monday' (of a week), 'saturday' (a weekend)…


def day(*dates: date | None, assumed: str | None = None) -> Day | None:
    found = tuple(d for d in dates if d is not None)
    return Day(found, assumed) if found else None


def safe_date(year: int | None, month: int | None, dom: int | None) -> date | None:
    if year not in YEARS or month is None or dom is None:
        return None
    try:
        return date(year, month, dom)
    except ValueError:
        return None


def checked_date(year: int | None, month: int | None, dom: int | None, text: str) -> date:
    """A date the words spell out exactly; one that cannot exist (13月, Feb 30) is an error, not a guess."""
    found = safe_date(year, month, dom)
    if found is None:
        raise UserError("error.bad_date", text=text)
    return found


def monday(of: date) -> date:
    return of - timedelta(days=of.weekday())


def week_day(today: date, weeks: int, weekday: int) -> date:
    """Weekday `weekday` of the Mon–Sun week `weeks` from this one."""
    return monday(today) + timedelta(weeks=weeks, days=weekday)


def nearby_weekday(today: date, weekday: int, past: bool) -> Day:
    """A bare weekday: the last and the coming one (the reader picks by preference). Today's
    weekday said today means next week's, since today is 'today' (for `at:` it may be today)."""
    return Day(tuple(today + timedelta(days=k) for k in range(-7, 8)
                     if (today + timedelta(days=k)).weekday() == weekday and (k != 0 or past)))


def counted_weekday(today: date, weekday: int, count: int) -> date:
    """The `count`-th such weekday after today (count > 0) or before it (count < 0)."""
    step = 1 if count > 0 else -1
    found, cursor = 0, today
    while True:
        cursor += timedelta(days=step)
        if cursor.weekday() == weekday:
            found += 1
            if found == abs(count):
                return cursor


def nth_weekday(year: int, month: int, weekday: int, n: int) -> date | None:
    """The n-th (1-based; -1 the last, -2 the second last) weekday of a month."""
    if year not in YEARS or not 1 <= month <= 12:
        return None
    days = [date(year, month, d) for d in range(1, monthrange(year, month)[1] + 1)]
    matching = [d for d in days if d.weekday() == weekday]
    index = n - 1 if n > 0 else n
    return matching[index] if -len(matching) <= index < len(matching) else None


def nth_day(year: int, month: int, n: int) -> date | None:
    """The n-th day of a month, or counted from its end when n < 0 (-1 the last day)."""
    if year not in YEARS or not 1 <= month <= 12:
        return None
    length = monthrange(year, month)[1]
    dom = n if n > 0 else length + 1 + n
    return date(year, month, dom) if 1 <= dom <= length else None


def around_years(month: int | None, dom: int | None, today: date) -> Day | None:
    """A month and day without a year: last year's, this year's and next year's."""
    return day(*(safe_date(today.year + k, month, dom) for k in (-1, 0, 1)))


def around_months(dom: int, today: date) -> Day | None:
    """A day of the month alone ('the 15th', '15号'): last month's, this month's, next month's."""
    first = today.replace(day=1)
    months = [(first.year + (first.month - 1 + k) // 12, (first.month - 1 + k) % 12 + 1) for k in (-1, 0, 1)]
    return day(*(safe_date(y, m, dom) for y, m in months))


def agreeing(found: Day, weekday: int, today: date, text: str, *, month: int | None = None,
             dom: int | None = None, year_given: bool = False) -> Day:
    """Keep the dates that fall on `weekday` ('Fri, Jul 18', '周日, 二月十号').

    When none of the nearby ones does, look further: the next years for a month and
    day ('Fri, Jul 18' → the next July 18 that is a Friday), the next months for a
    day of the month ('Thu 15th'). A weekday that contradicts a full date is an error.
    """
    matching = tuple(d for d in found.dates if d.weekday() == weekday)
    if matching:
        return Day(matching, found.assumed)
    if not year_given and month is not None and dom is not None:
        further = [d for k in range(0, 29) if (d := safe_date(today.year + k, month, dom)) and d.weekday() == weekday]
        if further:
            return Day((further[0],))
    if not year_given and month is None and dom is not None:
        cursor = today.replace(day=1)
        for _ in range(24):
            d = safe_date(cursor.year, cursor.month, dom)
            if d and d >= today and d.weekday() == weekday:
                return Day((d,))
            cursor = (cursor + timedelta(days=32)).replace(day=1)
    raise UserError("error.date_weekday", text=text, date=found.dates[0].isoformat())
