"""Chinese days (Simplified after `words.normalise`, so Traditional and Cantonese read too):
明天, 大后天, 周五, 下周五, 这周一, 上礼拜天, 下个月5号, 本月20号, 月底, 本周末, 十月第一个星期一,
2026年3月1日, 二月十五号, 明年3月, 周日 二月十号, 周五前.

Rules written down (README, "Dates"): 下周X is X of next Mon–Sun week and 这周X / 本周X
X of this one, even once it has passed; a bare 周X is the coming one (the last one for
`at:`); 下个月 / 3月 without a day is its 1st and 下周 its Monday, and the reply says so;
月底 is the last day of the month, 周末 its Saturday; 'X前' (周五前, by Friday) is X itself.
A date that cannot exist (2026年13月1日, 2月30日) is refused, never read as something else.
"""
from __future__ import annotations

import re
from datetime import date, timedelta

from handlers.dates import days, durations
from handlers.dates.days import Day, day
from handlers.dates.durations import shift_day
from handlers.dates.words import CN_NUM, cn_number

_RELATIVE = {"今天": 0, "今日": 0, "今晚": 0, "明天": 1, "明日": 1, "明晚": 1, "后天": 2, "大后天": 3,
             "昨天": -1, "昨日": -1, "昨晚": -1, "前天": -2, "前日": -2, "大前天": -3}
_WEEKDAY_NUMS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6,
                 "1": 0, "2": 1, "3": 2, "4": 3, "5": 4, "6": 5, "7": 6}
_WEEK = "(?:周|星期|礼拜)"
_MOD = "(?P<mod>下下个?|下个?|这个?|本|上上个?|上个?)"
_WEEK_OFFSETS = {"下下": 2, "下": 1, "这": 0, "本": 0, "上上": -2, "上": -1}
_MONTH_OFFSETS = {"下": 1, "这": 0, "本": 0, "上": -1, "今": 0, "下下": 2, "上上": -2}
_YEAR_OFFSETS = {"今年": 0, "明年": 1, "下年": 1, "去年": -1, "上年": -1, "后年": 2, "前年": -2}

_WEEKDAY = re.compile(rf"{_MOD}?{_WEEK}(?P<day>[一二三四五六日天1-7])")
_WEEK_ONLY = re.compile(rf"{_MOD}{_WEEK}")
_MONTH_ONLY = re.compile(rf"(?P<mod>下下个?|下个?|这个?|本|上上个?|上个?)月")
_NUM = rf"[0-9]{{1,2}}|{CN_NUM}"
_YEAR = rf"(?:(?P<y>[0-9]{{4}}|[零〇一二三四五六七八九]{{4}})\s*年|(?P<yw>今年|明年|下年|去年|上年|后年|前年))"
_DATE = re.compile(rf"(?:{_YEAR}\s*)?(?P<m>{_NUM})\s*月份?\s*(?P<d>{_NUM})\s*[日号]?")
_MONTH_NAMED = re.compile(rf"(?:{_YEAR}\s*)?(?P<m>{_NUM})\s*月份?")
_DOM = re.compile(rf"(?:(?P<mod>下下个?|下个?|这个?|本|上上个?|上个?)月\s*)?(?P<d>{_NUM})\s*[日号]")
_NTH_WEEKDAY = re.compile(
    rf"(?:(?P<m>{_NUM})月|(?P<mod>下个?|这个?|本|上个?)月)的?(?:第(?P<n>[一二三四五1-5])个|(?P<last>最后一个))"
    rf"{_WEEK}(?P<day>[一二三四五六日天1-7])")
_END = re.compile(rf"(?:(?P<mod>下个?|这个?|本|上个?)月?)?(?P<which>月底|月末|月初|周末|星期末|礼拜末|年底|年末|年初)")
_WEEKDAY_DATE = re.compile(rf"(?P<wd>{_WEEK}[一二三四五六日天1-7])\s*(?P<date>.+)|(?P<date2>.+?)\s*(?P<wd2>{_WEEK}[一二三四五六日天1-7])")
_BY = re.compile(r"(?P<rest>.+?)(?:之前|以前|前)")


def _weekday(text: str, today: date, past: bool) -> Day | None:
    if m := _WEEKDAY.fullmatch(text):
        weekday = _WEEKDAY_NUMS[m["day"]]
        if m["mod"]:
            return day(days.week_day(today, _WEEK_OFFSETS[m["mod"].rstrip("个")], weekday))
        return days.nearby_weekday(today, weekday, past)
    return None


def _year_of(m: re.Match, today: date) -> int | None:
    if m["y"]:
        return cn_number(m["y"])
    if m["yw"]:
        return today.year + _YEAR_OFFSETS[m["yw"]]
    return None


def _dated(text: str, today: date, past: bool = False) -> Day | None:
    """2026年12月1日, 12月1号, 二月十五號, 明年3月, 3月份, 下个月5号, 15号."""
    if m := _DATE.fullmatch(text):
        month, dom = cn_number(m["m"]), cn_number(m["d"])
        if m["y"] or m["yw"]:
            return day(days.checked_date(_year_of(m, today), month, dom, text))
        return days.around_years(month, dom, today) or day(days.checked_date(None, month, dom, text))
    if m := _MONTH_NAMED.fullmatch(text):
        month = cn_number(m["m"])
        if m["y"] or m["yw"]:
            return day(days.checked_date(_year_of(m, today), month, 1, text), assumed="first")
        if month == today.month:
            return day(today, assumed="today")
        firsts = [days.safe_date(today.year + k, month, 1) for k in (-1, 0, 1)]
        if not any(firsts):
            days.checked_date(None, month, 1, text)
        return day(*firsts, assumed="first")
    if m := _DOM.fullmatch(text):
        dom = cn_number(m["d"])
        if dom is None:
            return None
        if m["mod"]:
            first = shift_day(today.replace(day=1), _MONTH_OFFSETS[m["mod"].rstrip("个")], "month")
            return day(days.checked_date(first.year, first.month, dom, text))
        return days.around_months(dom, today) or day(days.checked_date(None, 1, dom, text))
    return None


def _periods(text: str, today: date, past: bool) -> Day | None:
    """下周 (its Monday), 下个月 (its 1st), 月底, 本周末, 十月第一个星期一."""
    if m := _WEEK_ONLY.fullmatch(text):
        offset = _WEEK_OFFSETS[m["mod"].rstrip("个")]
        return day(today, assumed="today") if offset == 0 else day(days.week_day(today, offset, 0), assumed="monday")
    if m := _MONTH_ONLY.fullmatch(text):
        offset = _MONTH_OFFSETS[m["mod"].rstrip("个")]
        if offset == 0:
            return day(today, assumed="today")
        return day(shift_day(today.replace(day=1), offset, "month"), assumed="first")
    if text in _YEAR_OFFSETS:
        return None  # a year alone is too vague to schedule anything on
    if m := _NTH_WEEKDAY.fullmatch(text):
        weekday = _WEEKDAY_NUMS[m["day"]]
        n = -1 if m["last"] else cn_number(m["n"])
        if m["m"]:
            month = cn_number(m["m"])
            for year in (today.year, today.year + 1):
                found = days.nth_weekday(year, month, weekday, n)
                if found and found >= today:
                    return day(found)
            return None
        first = shift_day(today.replace(day=1), _MONTH_OFFSETS[m["mod"].rstrip("个")], "month")
        return day(days.nth_weekday(first.year, first.month, weekday, n))
    if m := _END.fullmatch(text):
        mod = (m["mod"] or "").rstrip("个")
        which = m["which"]
        if which in ("周末", "星期末", "礼拜末"):
            saturday = days.week_day(today, _WEEK_OFFSETS.get(mod, 0), 5)
            return day(saturday, assumed="saturday")
        if which in ("年底", "年末", "年初"):
            return None if mod else day(days.safe_date(today.year, 1 if which == "年初" else 12, 1 if which == "年初" else 31))
        first = shift_day(today.replace(day=1), _MONTH_OFFSETS.get(mod, 0), "month")
        if which == "月初":
            return day(first, assumed="first")
        return day(days.nth_day(first.year, first.month, -1), assumed="last_day")
    return None


def _simple(text: str, today: date, past: bool) -> Day | None:
    if text in _RELATIVE:
        return day(today + timedelta(days=_RELATIVE[text]))
    for rule in (_weekday, _dated, _periods):
        if (found := rule(text, today, past)) is not None:
            return found
    return None


def read_day(text: str, today: date, past: bool) -> Day | None:
    """The dates `text` may mean, or None when it is not a Chinese date."""
    text = text.replace(" ", "").strip("的在于")
    if not text:
        return None
    if (found := _simple(text, today, past)) is not None:
        return found
    if m := _WEEKDAY_DATE.fullmatch(text):
        weekday_text, date_text = (m["wd"], m["date"]) if m["wd"] else (m["wd2"], m["date2"])
        found = _dated(date_text, today)
        if found is not None:
            return days.agreeing(found, _WEEKDAY_NUMS[weekday_text[-1]], today, text)
    if (found := day(durations.day_after(text, today, past))) is not None:
        return found
    if m := _BY.fullmatch(text):
        return _simple(m["rest"], today, past)
    return None
