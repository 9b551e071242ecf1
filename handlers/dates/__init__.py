"""Natural dates and times of day, in English and Chinese, in the member's time zone.

Our own grammar reads what people type in chat, with the product's rules written
down in each module (README, "Dates"); dateparser only reads dates in other
languages. `parsing.parse_when` is the public entry point; `split_leading` finds the
longest leading part of a text that is a date (`next: friday bring samples`).

    words.py       one spelling for each thing: Traditional, Cantonese, hedges; numbers
    clock.py       times of day and period words
    durations.py   spans from now
    days.py        calendar pieces: weeks, n-th weekday, a weekday that must agree
    en.py, zh.py   the day grammars
    zones.py       zones written in the text
    holiday_names.py  holidays by name, from the `holidays` and `lunardate` libraries
    fallback.py    dateparser, for other languages
    reader.py      putting it together
"""
from __future__ import annotations

from datetime import datetime, tzinfo

from handlers.dates.clock import read_clock
from handlers.dates.reader import DEFAULT_TIME, MAX_DATE_LEN, When, read, split_leading
from handlers.dates.words import CN_NUM, cn_number

__all__ = ["CN_NUM", "DEFAULT_TIME", "MAX_DATE_LEN", "When", "cn_number", "parse_when", "read_clock",
           "split_leading"]


def parse_when(text: str, *, now: datetime, tz: tzinfo, past: bool = False) -> When:
    """Read a folded date/time in zone `tz`; see `parsing.parse_when` for the forms."""
    return read(text, now, tz, past)
