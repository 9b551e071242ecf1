"""dateparser, for dates in the words of other languages ('15 décembre', 'mañana', 'завтра').

Only what neither grammar reads comes here, and only an answer that accounts for
every number in the text is kept: dateparser otherwise fills gaps with guesses
('3 years from today' → 2010, 'at 3 15' → 15 March). English and Chinese phrases
are never sent, nor is text without a letter English lacks, nor bare numbers. Imported on first use (it is slow to load).
"""
from __future__ import annotations

import re
from datetime import date, datetime

from handlers.dates.days import YEARS

#: The languages asked about (all of dateparser's 200 make every miss slow); English and
#: Chinese have their own grammars.
LANGUAGES = ["es", "fr", "de", "pt", "it", "nl", "ru", "ja", "ko", "vi", "id", "ms", "th", "tr", "pl"]
#: Letters English does not use (accents, Cyrillic, kana, hangul, Thai…): only a text with one is asked
#: about, so English that no grammar reads ('someday maybe') never waits for dateparser to load.
_FOREIGN_LETTER = re.compile(r"[à-ÿß-ɏЀ-ӿ\u0e00-\u0e7f\u3040-\u30ff\uac00-\ud7af]")
_ENGLISH_WORDS = re.compile(
    r"\b(?:in|at|on|of|the|next|last|this|ago|from|hence|after|before|to|past|half|quarter|and|a|an|"
    r"day|days|week|weeks|month|months|year|years|hour|hours|minute|minutes|now|today|tomorrow|yesterday)\b")
_NUMBERS = re.compile(r"[0-9]+")


def read(text: str, local_now: datetime, past: bool) -> tuple[date, tuple[int, int] | None] | None:
    """(date, time of day or None), or None when dateparser cannot tell for sure."""
    if not _FOREIGN_LETTER.search(text) or _ENGLISH_WORDS.search(text) or re.search(r"[\u4e00-\u9fff]", text):
        return None
    from dateparser.date import DateDataParser  # slow import, needed only here

    settings = {
        "RELATIVE_BASE": local_now.replace(tzinfo=None),
        "PREFER_DATES_FROM": "past" if past else "future",
        "RETURN_TIME_AS_PERIOD": True,
        "PARSERS": ["relative-time", "absolute-time"],
    }
    try:
        data = DateDataParser(languages=LANGUAGES, settings=settings).get_date_data(text)
    except Exception:  # dateparser raises all sorts of errors on odd input
        return None
    if data is None or data.date_obj is None or data.period not in ("day", "time") or \
            (data.locale or "en").startswith("en"):
        return None
    moment = data.date_obj
    if moment.tzinfo is not None:
        moment = moment.astimezone(local_now.tzinfo)
    shown = {str(moment.day), str(moment.month), str(moment.year), str(moment.year % 100), str(moment.hour),
             str(moment.hour % 12 or 12), str(moment.minute)}
    if moment.year not in YEARS or any(str(int(n)) not in shown for n in _NUMBERS.findall(text)):
        return None
    return moment.date(), (moment.hour, moment.minute) if data.period == "time" else None
