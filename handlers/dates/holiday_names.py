"""Holidays by name, in English and Chinese: 'christmas', "new year's eve", 'halloween',
'thanksgiving', 元旦, 情人节, 劳动节, 儿童节, 国庆节, 圣诞节, and the lunar 春节, 元宵节, 端午节, 中秋节.

Dates come from maintained libraries, not from a table of ours: `holidays` (China's,
the US's with its unofficial days, the UK's, Hong Kong's and Macau's) and `lunardate`
for lunar days no country lists as a holiday (元宵 is the 15th of the first lunar
month). Both are imported on the first holiday phrase, and each year is built once.
"""
from __future__ import annotations

import re
from datetime import date
from functools import lru_cache

_SOURCES = [  # (country, language, categories)
    ("CN", "zh_CN", ("public", "half_day")), ("CN", "en_US", ("public", "half_day")),
    ("US", "en_US", ("public", "unofficial")), ("GB", None, ("public",)), ("HK", "zh_CN", ("public",)),
    ("MO", "zh_CN", ("public",)),
]
_LUNAR = {"元宵节": (1, 15), "七夕": (7, 7), "腊八": (12, 8)}
#: What people call a holiday → the name the library gives it.
_ALIASES = {
    "xmas": "christmas day", "christmas": "christmas day", "x-mas": "christmas day",
    "new year": "new year's day", "new years day": "new year's day", "new year day": "new year's day",
    "new years eve": "new year's eve", "valentines day": "valentine's day", "valentine day": "valentine's day",
    "valentines": "valentine's day", "st patrick's day": "saint patrick's day",
    "st patricks day": "saint patrick's day", "st paddy's day": "saint patrick's day",
    "saint paddy's day": "saint patrick's day", "saint patricks day": "saint patrick's day",
    "thanksgiving": "thanksgiving day", "easter": "easter sunday", "july 4th": "independence day",
    "chinese new year": "chinese new year (spring festival)", "spring festival": "chinese new year (spring festival)",
    "元旦节": "元旦", "阳历新年": "元旦", "新年": "元旦", "情人节": "valentine's day", "圣瓦伦丁节": "valentine's day",
    "妇女节": "国际妇女节", "三八节": "国际妇女节", "五一": "劳动节", "五一劳动节": "劳动节", "五一国际劳动节": "劳动节",
    "国际劳动节": "劳动节", "儿童节": "六一儿童节", "国际儿童节": "六一儿童节", "八一建军节": "建军节",
    "国庆": "国庆节", "十一": "国庆节", "圣诞": "圣诞节", "万圣节": "halloween", "澳门回归纪念日": "澳门特别行政区成立纪念日",
    "香港回归纪念日": "香港特别行政区成立纪念日", "过年": "春节", "农历新年": "春节", "大年初一": "春节",
    "除夕": "农历除夕", "大年三十": "农历除夕", "端午": "端午节", "中秋": "中秋节", "元宵": "元宵节",
    "清明": "清明节", "重阳": "重阳节", "感恩节": "thanksgiving day", "复活节": "easter sunday",
    "平安夜": "christmas eve",
}
_YEAR = re.compile(r"(?:(?P<mod>next|this|last)\s+)?(?P<name>.+?)(?:\s*(?P<y>[0-9]{4})年?)?")
_OBSERVED = re.compile(r"observed|补假|调休|day off|翌日|第一个周日")


def _clean(name: str) -> str:
    return " ".join(name.lower().replace("’", "'").split())


@lru_cache(maxsize=8)
def _year(year: int) -> dict[str, date]:
    """Every holiday name the libraries give for `year` (and the lunar days) → its date."""
    import holidays
    from lunardate import LunarDate

    names: dict[str, date] = {}
    for country, language, categories in _SOURCES:
        calendar = holidays.country_holidays(country, years=year, language=language, categories=categories)
        for when, label in sorted(calendar.items()):
            for name in label.split(";"):
                if not _OBSERVED.search(name):
                    names.setdefault(_clean(name), when)
    for name, (month, dom) in _LUNAR.items():
        names.setdefault(name, LunarDate(year, month, dom).to_solar_date())
    return names


#: A holiday's name has one of these; anything else is not looked up (the libraries load slowly).
_LOOKS_LIKE = re.compile(r"节|日|夜|旦|夕|年|午|秋|宵|明|阳|庆|诞|一|八|\b(?:day|eve|x-?mas|christmas|halloween|"
                         r"thanksgiving|easter|year|years|festival|patrick'?s|paddy'?s|valentine'?s?)\b")


def _known(name: str, year: int) -> str | None:
    name = _ALIASES.get(name, name)
    return name if name in _year(year) else None


def holiday_dates(text: str, today: date) -> list[date] | None:
    """The dates a holiday's name may mean (last, this and next year's; or the year given)."""
    m = _YEAR.fullmatch(_clean(text))
    if not m or len(text) > 40 or not _LOOKS_LIKE.search(text):
        return None
    name = _known(m["name"].strip(), today.year) or _known(m["name"].replace("'", "").strip(), today.year)
    if name is None:
        return None
    if m["y"]:
        year = int(m["y"])
        return [_year(year)[name]] if 1900 < year < 2200 and name in _year(year) else None
    found = [_year(y)[name] for y in (today.year - 1, today.year, today.year + 1) if name in _year(y)]
    if m["mod"] == "next":
        found = [d for d in found if d > today][:1]
    elif m["mod"] == "last":
        found = [d for d in found if d < today][-1:]
    return found or None
