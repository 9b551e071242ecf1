"""The date reader (handlers/dates/): one test per wrong-answer class of issue 10, the kinds of
phrasing the grammars are built for (with phrasings that are in no corpus), holidays, the
longest leading date, and robustness with hypothesis."""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.dates import reader
from handlers.errors import UserError
from handlers.i18n import t
from handlers.parsing import parse_when, split_when

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 11, 18, 15, 0, tzinfo=SHANGHAI)  # a Wednesday afternoon


def local(text: str, *, tz: ZoneInfo = SHANGHAI, now: datetime = NOW, past: bool = False) -> str:
    return f"{parse_when(text, now=now, tz=tz, past=past).at.astimezone(tz):%Y-%m-%d %a %H:%M}"


def refused(text: str, *, tz: ZoneInfo = SHANGHAI) -> UserError:
    with pytest.raises(UserError) as caught:
        parse_when(text, now=NOW, tz=tz)
    return caught.value


# --- wrong answers: each class named in issue 10 ---------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("tomorrow afternoon at 5", "2026-11-19 Thu 17:00"),
    ("at 5 tomorrow afternoon", "2026-11-19 Thu 17:00"),
    ("tonight at 11", "2026-11-18 Wed 23:00"),
    ("9 tomorrow evening", "2026-11-19 Thu 21:00"),
    ("tomorrow morning at 8", "2026-11-19 Thu 08:00"),
    ("this evening at 12", "2026-11-19 Thu 00:00"),  # midnight, at the end of today
    ("明天下午5点", "2026-11-19 Thu 17:00"),
    ("今晚11点", "2026-11-18 Wed 23:00"),
])
def test_an_hour_given_beats_the_period_word(text, expected):
    assert local(text) == expected


@pytest.mark.parametrize("text, tz, expected", [
    ("Thursday 8:00 GMT", SHANGHAI, "2026-11-19 Thu 16:00"),
    ("Thursday 8:00 GMT", ZoneInfo("Etc/GMT+2"), "2026-11-19 Thu 06:00"),  # the day is the written one
    ("Thursday 23:00 UTC", SHANGHAI, "2026-11-20 Fri 07:00"),  # … and moves only by the conversion
    ("tomorrow 9am PST", SHANGHAI, "2026-11-20 Fri 01:00"),
    ("friday 10am BST", SHANGHAI, "2026-11-20 Fri 17:00"),
    ("Thursday 9 am (BST)", SHANGHAI, "2026-11-19 Thu 16:00"),
    ("4pm CET", SHANGHAI, "2026-11-18 Wed 23:00"),
    ("3pm UTC+8", SHANGHAI, "2026-11-18 Wed 15:00"),
    ("10:00 utc-5", SHANGHAI, "2026-11-18 Wed 23:00"),
    ("北京时间下午3点", NEW_YORK, "2026-11-18 Wed 02:00"),
    ("明天上午9点 北京时间", NEW_YORK, "2026-11-18 Wed 20:00"),
    ("9am Asia/Tokyo", SHANGHAI, "2026-11-19 Thu 08:00"),
])
def test_a_zone_in_the_text_is_converted_into_the_members(text, tz, expected):
    assert local(text, tz=tz, now=NOW.astimezone(tz)) == expected


def test_cst_is_refused_since_it_names_two_zones():
    assert refused("friday 3pm CST").key == "error.zone_ambiguous"


@pytest.mark.parametrize("text, expected", [
    ("3 years from today", "2029-11-18 Sun 15:00"),
    ("in 15", "2026-11-18 Wed 15:15"),
    ("at 3 15", "2026-11-18 Wed 15:15"),
    ("10/31/74", "1974-10-31 Thu 09:00"),
    ("10/31/35", "2035-10-31 Wed 09:00"),  # at most ten years ahead: this century
    ("31/10/2026", "2026-10-31 Sat 09:00"),
])
def test_no_fallback_nonsense(text, expected):
    assert local(text) == expected


@pytest.mark.parametrize("text", ["two three", "3 30", "25", "1 adult", "at 650.650.6500", "4a", "palm",
                                  "three twenty", "laughing out loud", "Pay ABC 2000"])
def test_numbers_and_words_that_are_no_date_are_refused(text):
    assert refused(text).key == "error.bad_date"


def test_a_weekday_that_contradicts_the_date_is_not_ignored():
    assert local("Fri, Jul 18") == "2025-07-18 Fri 09:00"  # the nearest July 18 that is a Friday
    assert local("Jul 18, Fri") == "2025-07-18 Fri 09:00"
    assert local("Sat, Jul 18") == "2026-07-18 Sat 09:00"
    assert local("Fri, Jul 18 2014") == "2014-07-18 Fri 09:00"
    error = refused("Fri, Jul 18 2013")  # a Thursday
    assert error.key == "error.date_weekday" and error.params["date"] == "2013-07-18"
    assert "Jul 18 2013" in t("en", error.key, **error.params)
    assert local("周日, 十一月二十二号") == "2026-11-22 Sun 09:00"
    assert refused("周一 2026年11月22日").key == "error.date_weekday"


@pytest.mark.parametrize("text", ["2026年13月1日", "2026年2月30日", "13月1日", "2026-13-01", "2/30/2026", "feb 30",
                                  "quarter past 24", "ten to 25"])
def test_a_date_that_cannot_exist_is_refused_not_read_as_another(text):
    error = refused(text)
    assert error.key == "error.bad_date" and error.params["text"] == text


# --- kinds of phrasing, with phrasings that are in no corpus -----------------------------------

@pytest.mark.parametrize("text, expected", [
    ("at 3pm", "2026-11-18 Wed 15:00"),
    ("@ 3pm", "2026-11-18 Wed 15:00"),
    ("at noon", "2026-11-19 Thu 12:00"),
    ("3:15 in the afternoon", "2026-11-18 Wed 15:15"),
    ("half past 3", "2026-11-18 Wed 15:30"),
    ("half past ten", "2026-11-19 Thu 10:30"),
    ("quarter to 5", "2026-11-18 Wed 16:45"),
    ("a quarter to noon", "2026-11-19 Thu 11:45"),
    ("half to 0", "2026-11-18 Wed 23:30"),  # a 24-hour clock: before midnight, not hour -1
    ("quarter past 0", "2026-11-19 Thu 00:15"),
    ("quarter to 15", "2026-11-19 Thu 14:45"),
    ("twenty past four pm", "2026-11-18 Wed 16:20"),
    ("ten to six in the evening", "2026-11-18 Wed 17:50"),
    ("in a couple of hours", "2026-11-18 Wed 17:00"),
    ("in a couple of days", "2026-11-20 Fri 15:00"),
    ("in a few weeks", "2026-12-09 Wed 15:00"),
    ("a fortnight hence", "2026-12-02 Wed 15:00"),
    ("7 days hence", "2026-11-25 Wed 15:00"),
    ("in 1/2h", "2026-11-18 Wed 15:30"),
    ("first tuesday of october", "2027-10-05 Tue 09:00"),
    ("second friday of next month", "2026-12-11 Fri 09:00"),
    ("last friday of the month", "2026-11-27 Fri 09:00"),
    ("the following week", "2026-11-23 Mon 09:00"),
    ("friday after next", "2026-11-27 Fri 09:00"),
    ("2 mondays from now", "2026-11-30 Mon 09:00"),
    ("end of month", "2026-11-30 Mon 09:00"),
    ("end of next month", "2026-12-31 Thu 09:00"),
    ("end of the week", "2026-11-20 Fri 09:00"),
    ("this weekend", "2026-11-21 Sat 09:00"),
    ("next weekend", "2026-11-28 Sat 09:00"),
    ("by friday", "2026-11-20 Fri 09:00"),
    ("friday 9", "2026-11-20 Fri 09:00"),
    ("tmrw 10", "2026-11-19 Thu 10:00"),
    ("the 3rd of december", "2026-12-03 Thu 09:00"),
    ("dec 3rd at 2:30pm", "2026-12-03 Thu 14:30"),
    ("20th of next month", "2026-12-20 Sun 09:00"),
])
def test_english_kinds(text, expected):
    assert local(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("月底", "2026-11-30 Mon 09:00"),
    ("下个月底", "2026-12-31 Thu 09:00"),
    ("本周末", "2026-11-21 Sat 09:00"),
    ("这周末", "2026-11-21 Sat 09:00"),
    ("下周末", "2026-11-28 Sat 09:00"),
    ("下个月5号", "2026-12-05 Sat 09:00"),
    ("本月20号", "2026-11-20 Fri 09:00"),
    ("十月第一个星期一", "2027-10-04 Mon 09:00"),
    ("下个月第二个周三", "2026-12-09 Wed 09:00"),
    ("本月最后一个周五", "2026-11-27 Fri 09:00"),
    ("周五前", "2026-11-20 Fri 09:00"),
    ("下周三之前", "2026-11-25 Wed 09:00"),
    ("三点", "2026-11-18 Wed 15:00"),  # the working-hours rule
    ("两点半", "2026-11-19 Thu 14:30"),
    ("八点", "2026-11-19 Thu 08:00"),
    ("凌晨3点", "2026-11-19 Thu 03:00"),
    ("3月15日下午两点半", "2027-03-15 Mon 14:30"),
    ("一个半小时后", "2026-11-18 Wed 16:30"),
    # Traditional characters of what the Simplified grammar knows
    ("後天", "2026-11-20 Fri 09:00"),
    ("這週三", "2026-11-18 Wed 09:00"),
    ("下個禮拜五", "2026-11-27 Fri 09:00"),
    ("下個月20號", "2026-12-20 Sun 09:00"),
    ("現在", "2026-11-18 Wed 15:00"),
    ("下午三點半", "2026-11-18 Wed 15:30"),
    ("禮拜五之前", "2026-11-20 Fri 09:00"),
    # Cantonese
    ("聽日", "2026-11-19 Thu 09:00"),
    ("尋日", "2026-11-17 Tue 09:00"),
    ("琴日", "2026-11-17 Tue 09:00"),
    ("今個星期五", "2026-11-20 Fri 09:00"),
    ("宜家", "2026-11-18 Wed 15:00"),
    ("聽朝", "2026-11-19 Thu 09:00"),
    ("後日晏晝三點", "2026-11-20 Fri 15:00"),
    ("後日下晝3點", "2026-11-20 Fri 15:00"),
    ("今個月尾", "2026-11-30 Mon 09:00"),
    ("聽日四點踏三", "2026-11-19 Thu 16:15"),  # a 字 is five minutes
    ("聽日四點三個字", "2026-11-19 Thu 16:15"),
])
def test_chinese_kinds(text, expected):
    assert local(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("christmas", "2026-12-25 Fri 09:00"),
    ("xmas at 6 pm", "2026-12-25 Fri 18:00"),
    ("new year's eve", "2026-12-31 Thu 09:00"),
    ("new years day", "2027-01-01 Fri 09:00"),
    ("thanksgiving", "2026-11-26 Thu 09:00"),  # movable: the library knows the fourth Thursday
    ("halloween 2027", "2027-10-31 Sun 09:00"),
    ("元旦", "2027-01-01 Fri 09:00"),
    ("元旦上午10点", "2027-01-01 Fri 10:00"),
    ("国庆节", "2027-10-01 Fri 09:00"),
    ("國慶", "2027-10-01 Fri 09:00"),
    ("劳动节", "2027-05-01 Sat 09:00"),
    ("儿童节", "2027-06-01 Tue 09:00"),
    ("圣诞节", "2026-12-25 Fri 09:00"),
    ("情人节", "2027-02-14 Sun 09:00"),
    # lunar
    ("春节", "2027-02-06 Sat 09:00"),
    ("元宵节", "2027-02-20 Sat 09:00"),
    ("端午节", "2027-06-09 Wed 09:00"),
    ("中秋节", "2027-09-15 Wed 09:00"),
])
def test_holidays_by_name(text, expected):
    assert local(text) == expected


def test_holidays_count_back_for_back_dating():
    assert local("中秋节", past=True) == "2026-09-25 Fri 09:00"


@pytest.mark.parametrize("text, expected", [
    ("15 décembre", "2026-12-15 Tue 09:00"),
    ("mañana", "2026-11-19 Thu 09:00"),
    ("завтра", "2026-11-19 Thu 09:00"),
])
def test_other_languages_go_to_dateparser(text, expected):
    assert local(text) == expected


def test_english_no_grammar_reads_is_refused_without_asking_dateparser():
    code = ("import sys; from datetime import datetime, timezone; from handlers.parsing import parse_when\n"
            "try: parse_when('someday maybe', now=datetime.now(timezone.utc), tz=timezone.utc)\n"
            "except Exception as error: print(type(error).__name__, 'dateparser' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "UserError False"


# --- what the reading assumed --------------------------------------------------------------------

@pytest.mark.parametrize("text, assumed, expected", [
    ("next month", ("first",), "2026-12-01 Tue 09:00"),
    ("下个月", ("first",), "2026-12-01 Tue 09:00"),
    ("明年3月", ("first",), "2027-03-01 Mon 09:00"),
    ("March", ("first",), "2027-03-01 Mon 09:00"),
    ("next week", ("monday",), "2026-11-23 Mon 09:00"),
    ("下周", ("monday",), "2026-11-23 Mon 09:00"),
    ("三点", ("pm",), "2026-11-18 Wed 15:00"),
    ("下个月 三点", ("first", "pm"), "2026-12-01 Tue 15:00"),
    ("下午三点", (), "2026-11-18 Wed 15:00"),
    ("3am", (), "2026-11-19 Thu 03:00"),
    ("friday", (), "2026-11-20 Fri 09:00"),
])
def test_what_the_words_did_not_say_is_reported(text, assumed, expected):
    assert parse_when(text, now=NOW, tz=SHANGHAI).assumed == assumed
    assert local(text) == expected


# --- the longest leading date --------------------------------------------------------------------

@pytest.mark.parametrize("text, expected, rest", [
    ("friday bring samples", "2026-11-20 Fri 09:00", "bring samples"),
    ("in 2 weeks check", "2026-12-02 Wed 15:00", "check"),
    ("next monday 10am call the boss", "2026-11-23 Mon 10:00", "call the boss"),
    ("friday at the office", "2026-11-20 Fri 09:00", "at the office"),
    ("tomorrow 1am night shift", "2026-11-19 Thu 01:00", "night shift"),  # 'night' adds nothing to 1am
    ("in 3 minutes after restart", "2026-11-18 Wed 15:03", "after restart"),
    ("月底", "2026-11-30 Mon 09:00", ""),
    ("月底前打电话", "2026-11-30 Mon 09:00", "打电话"),
    ("下周五下午3点带样品", "2026-11-27 Fri 15:00", "带样品"),
    ("明天 带合同", "2026-11-19 Thu 09:00", "带合同"),
])
def test_split_when_gives_the_date_and_the_words_after_it(text, expected, rest):
    when, after = split_when(text, now=NOW, tz=SHANGHAI)
    assert f"{when.at.astimezone(SHANGHAI):%Y-%m-%d %a %H:%M}" == expected
    assert after == rest


def test_split_when_names_the_text_when_it_does_not_start_with_a_date():
    with pytest.raises(UserError) as caught:
        split_when("bring samples friday", now=NOW, tz=SHANGHAI)
    assert caught.value.key == "error.bad_date" and caught.value.params["text"] == "bring samples friday"


# --- robustness, determinism, speed of import ---------------------------------------------------

WORDS = ["next", "at", "tomorrow", "friday", "fri", "in", "days", "3d", "10am", "pm", "14:30", "half", "past",
         "quarter", "to", "GMT", "UTC+8", "PST", "CST", "of", "the", "first", "last", "week", "month", "end",
         "weekend", "下周五", "周", "星期", "下午", "点", "半", "十", "两", "天后", "个月", "年", "月", "日", "号",
         "後", "個", "聽日", "踏", "字", "北京时间", "月底", "前", "元旦", "春节", "christmas", "/", "-", ",", ".",
         ":", "'", '"', "😀", "\x00", "\ud800", " ", "0", "9", "12", "13", "31", "99999999999999999999"]
date_text = st.one_of(
    st.text(max_size=120),
    st.lists(st.one_of(st.sampled_from(WORDS), st.integers(-5, 3000).map(str)), max_size=12).map(" ".join),
    st.lists(st.sampled_from(WORDS), max_size=12).map("".join),
)
ZONES = [SHANGHAI, NEW_YORK, ZoneInfo("Etc/GMT+2"), timezone.utc]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=date_text, zone=st.sampled_from(ZONES), past=st.booleans())
def test_any_text_gives_a_date_or_a_user_error_and_the_same_each_time(text, zone, past):
    outcomes = []
    for _ in range(2):
        reader._read_cached.cache_clear()
        try:
            when = parse_when(text, now=NOW, tz=zone, past=past)
            assert when.at.tzinfo == timezone.utc
            outcomes.append(when)
        except UserError as error:
            t("en", error.key, **error.params), t("zh", error.key, **error.params)
            outcomes.append((error.key, error.params))
        try:
            split_when(text, now=NOW, tz=zone, past=past)
        except UserError:
            pass
    assert outcomes[0] == outcomes[1]


def test_reading_dates_does_not_load_dateparser_or_the_holiday_libraries():
    code = ("import sys; from datetime import datetime, timezone; from handlers.parsing import parse_when; "
            "parse_when('friday 3pm', now=datetime.now(timezone.utc), tz=timezone.utc); "
            "print(sorted(m for m in ('dateparser', 'holidays', 'lunardate') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
