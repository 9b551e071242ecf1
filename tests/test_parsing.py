"""The command language readers: tables of forms, then robustness with hypothesis."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.errors import UserError
from handlers.i18n import catalogue, placeholders, t
from handlers.parsing import (
    CHANNELS, FIELD_NAMES, Money, Ref, Token, as_typed, classify_ref, fold, parse_amount,
    parse_channel, parse_duration_days, parse_hhmm, parse_when, split_clauses,
    split_fields, tokenize,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 11, 18, 15, 0, tzinfo=SHANGHAI)  # a Wednesday afternoon


def local(text: str, *, past: bool = False, now: datetime = NOW, tz: ZoneInfo = SHANGHAI):
    when = parse_when(text, now=now, tz=tz, past=past)
    assert when.at.tzinfo == timezone.utc
    return when.at.astimezone(tz).strftime("%Y-%m-%d %H:%M"), when.explicit_time


# --- dates ----------------------------------------------------------------------

@pytest.mark.parametrize("text, expected, explicit", [
    ("tomorrow", "2026-11-19 09:00", False),
    ("Tomorrow", "2026-11-19 09:00", False),
    ("today", "2026-11-18 09:00", False),
    ("yesterday", "2026-11-17 09:00", False),
    ("friday", "2026-11-20 09:00", False),
    ("fri", "2026-11-20 09:00", False),
    ("on friday", "2026-11-20 09:00", False),
    ("wednesday", "2026-11-25 09:00", False),  # today's 09:00 is gone: next week's
    ("wednesday 5pm", "2026-11-25 17:00", True),  # today's weekday said today: next week's
    ("today 5pm", "2026-11-18 17:00", True),
    ("this friday", "2026-11-20 09:00", False),
    ("next friday", "2026-11-27 09:00", False),  # the Friday of next week, like 下周五
    ("next monday 10am", "2026-11-23 10:00", True),
    ("friday at 3pm", "2026-11-20 15:00", True),
    ("last monday", "2026-11-16 09:00", False),
    ("next week", "2026-11-23 09:00", False),
    ("next month", "2026-12-01 09:00", False),  # its 1st, and the reply says so
    ("in 3 days", "2026-11-21 15:00", True),
    ("3 days", "2026-11-21 15:00", True),
    ("3d", "2026-11-21 15:00", True),
    ("2w", "2026-12-02 15:00", True),
    ("in a week", "2026-11-25 15:00", True),
    ("3h", "2026-11-18 18:00", True),
    ("30m", "2026-11-18 15:30", True),
    ("in 2 hours", "2026-11-18 17:00", True),
    ("half an hour", "2026-11-18 15:30", True),
    ("3 days ago", "2026-11-15 15:00", True),
    ("in 3 days 10am", "2026-11-21 10:00", True),
    ("2026-12-01", "2026-12-01 09:00", False),
    ("2026/12/1", "2026-12-01 09:00", False),
    ("2026-12-01 14:00", "2026-12-01 14:00", True),
    ("12/01", "2026-12-01 09:00", False),
    ("12/01/2027", "2027-12-01 09:00", False),
    ("11/17", "2027-11-17 09:00", False),  # passed this year: next year's
    ("10am", "2026-11-19 10:00", True),  # passed today: tomorrow
    ("4pm", "2026-11-18 16:00", True),
    ("14:30", "2026-11-19 14:30", True),
    ("16:45", "2026-11-18 16:45", True),
    ("12am", "2026-11-19 00:00", True),
    ("noon", "2026-11-19 12:00", True),
    ("tonight", "2026-11-18 20:00", True),
    ("tomorrow morning", "2026-11-19 09:00", True),
    ("dec 1st 3pm", "2026-12-01 15:00", True),  # dateparser's long tail
    ("a week from now", "2026-11-25 15:00", True),
    ("december 1", "2026-12-01 09:00", False),
    ("20 Dec 2026", "2026-12-20 09:00", False),
    ("明天", "2026-11-19 09:00", False),
    ("后天", "2026-11-20 09:00", False),
    ("大后天", "2026-11-21 09:00", False),
    ("今天", "2026-11-18 09:00", False),
    ("昨天", "2026-11-17 09:00", False),
    ("前天", "2026-11-16 09:00", False),
    ("下周五", "2026-11-27 09:00", False),
    ("下个星期五", "2026-11-27 09:00", False),
    ("下下周五", "2026-12-04 09:00", False),
    ("这周五", "2026-11-20 09:00", False),
    ("本周五", "2026-11-20 09:00", False),
    ("周五", "2026-11-20 09:00", False),
    ("星期五", "2026-11-20 09:00", False),
    ("礼拜五", "2026-11-20 09:00", False),
    ("周日", "2026-11-22 09:00", False),
    ("星期天", "2026-11-22 09:00", False),
    ("上周一", "2026-11-09 09:00", False),
    ("这周一", "2026-11-16 09:00", False),
    ("下周", "2026-11-23 09:00", False),
    ("下周一上午10点", "2026-11-23 10:00", True),
    ("周二十点", "2026-11-24 10:00", True),  # 周二 at 十点, not 周 at 二十点
    ("下午3点", "2026-11-18 15:00", True),
    ("下午3:30", "2026-11-18 15:30", True),
    ("晚上8点", "2026-11-18 20:00", True),
    ("上午10点半", "2026-11-19 10:30", True),
    ("10点15分", "2026-11-19 10:15", True),
    ("8点一刻", "2026-11-19 08:15", True),
    ("中午12点", "2026-11-19 12:00", True),
    ("中午1点", "2026-11-19 13:00", True),
    ("十点", "2026-11-19 10:00", True),
    ("十一点", "2026-11-19 11:00", True),
    ("明天下午", "2026-11-19 15:00", True),
    ("明天下午3点", "2026-11-19 15:00", True),
    ("明晚8点", "2026-11-19 20:00", True),
    ("今晚", "2026-11-18 20:00", True),
    ("3天后", "2026-11-21 15:00", True),
    ("两天后", "2026-11-20 15:00", True),
    ("十天后", "2026-11-28 15:00", True),
    ("2周后", "2026-12-02 15:00", True),
    ("一周后", "2026-11-25 15:00", True),
    ("3小时后", "2026-11-18 18:00", True),
    ("半小时后", "2026-11-18 15:30", True),
    ("30分钟后", "2026-11-18 15:30", True),
    ("1个月后", "2026-12-18 15:00", True),
    ("3天前", "2026-11-15 15:00", True),
    ("3天后下午3点", "2026-11-21 15:00", True),
    ("下个月", "2026-12-01 09:00", False),
    ("下月", "2026-12-01 09:00", False),
    ("12月1日", "2026-12-01 09:00", False),
    ("12月1号", "2026-12-01 09:00", False),
    ("十二月一日", "2026-12-01 09:00", False),
    ("12月1日下午2点", "2026-12-01 14:00", True),
    ("2026年12月1日", "2026-12-01 09:00", False),
    ("2027年1月5日上午9点半", "2027-01-05 09:30", True),
    ("15号", "2026-12-15 09:00", False),
    ("20号", "2026-11-20 09:00", False),
    ("明天，下午3点。", "2026-11-19 15:00", True),
    ("ｔｏｍｏｒｒｏｗ　１０ａｍ", "2026-11-19 10:00", True),  # full-width input
])
def test_parse_when(text, expected, explicit):
    assert local(text) == (expected, explicit)


@pytest.mark.parametrize("text, expected", [
    ("friday", "2026-11-13 09:00"),  # last Friday
    ("monday", "2026-11-16 09:00"),  # the most recent Monday
    ("wednesday", "2026-11-18 09:00"),  # this morning has passed
    ("周五", "2026-11-13 09:00"),
    ("3d", "2026-11-15 15:00"),  # a bare duration counts back
    ("10am", "2026-11-18 10:00"),
    ("4pm", "2026-11-17 16:00"),
    ("12/01", "2025-12-01 09:00"),
    ("15号", "2026-11-15 09:00"),
    ("下周五", "2026-11-27 09:00"),  # explicit weeks are not bent by the preference
    ("tomorrow", "2026-11-19 09:00"),
])
def test_parse_when_prefers_past_for_back_dating(text, expected):
    assert local(text, past=True)[0] == expected


def test_parse_when_on_a_sunday_bare_weekday_is_the_coming_one():
    sunday = datetime(2026, 11, 22, 10, 0, tzinfo=SHANGHAI)
    assert local("周五", now=sunday)[0] == "2026-11-27 09:00"
    assert local("这周五", now=sunday)[0] == "2026-11-20 09:00"
    assert local("下周五", now=sunday)[0] == "2026-11-27 09:00"


def test_parse_when_across_dst_end():
    now = datetime(2026, 10, 31, 12, 0, tzinfo=NEW_YORK)  # EDT, clocks go back Nov 1
    when = parse_when("tomorrow 9am", now=now, tz=NEW_YORK)
    assert when.at == datetime(2026, 11, 1, 14, 0, tzinfo=timezone.utc)  # 09:00 EST
    # days count on the calendar (same wall time), hours on the clock
    assert local("1d", now=now, tz=NEW_YORK)[0] == "2026-11-01 12:00"
    assert parse_when("24h", now=now, tz=NEW_YORK).at.astimezone(NEW_YORK).hour == 11


def test_parse_when_across_dst_start():
    now = datetime(2026, 3, 7, 12, 0, tzinfo=NEW_YORK)  # EST, clocks go forward Mar 8
    when = parse_when("明天上午9点", now=now, tz=NEW_YORK)
    assert when.at == datetime(2026, 3, 8, 13, 0, tzinfo=timezone.utc)  # 09:00 EDT


def test_parse_when_accepts_any_aware_now():
    assert local("tomorrow", now=NOW.astimezone(timezone.utc)) == ("2026-11-19 09:00", False)


@pytest.mark.parametrize("text, not_understood", [
    ("", ""),
    ("   ", ""),
    ("garbage", "garbage"),
    ("may", "may"),  # alone, more often the verb than the month
    ("3", "3"),
    ("25:00", "25:00"),
    ("13pm", "13pm"),
    ("2026-02-30", "2026-02-30"),
    ("32/13", "32/13"),  # dateparser would read a year into it
    ("2026/13/01", "2026/13/01"),
    ("13/2026", "13/2026"),
    ("blah 3pm", "blah"),
    ("凌晨", "凌晨"),
    ("'; DROP TABLE customers; --", "'; DROP TABLE customers; --"),
])
def test_parse_when_rejects(text, not_understood):
    with pytest.raises(UserError) as caught:
        parse_when(text, now=NOW, tz=SHANGHAI)
    assert caught.value.key == "error.bad_date"
    assert caught.value.params["text"] == not_understood


def test_parse_when_long_input_is_rejected_fast():
    started = time.perf_counter()
    with pytest.raises(UserError) as caught:
        parse_when("next friday " * 1000, now=NOW, tz=SHANGHAI)
    assert caught.value.key == "error.bad_date"
    assert len(caught.value.params["text"]) <= 41
    assert time.perf_counter() - started < 0.5


# --- clauses ----------------------------------------------------------------------

@pytest.mark.parametrize("text, summary, clauses", [
    ("call about pricing next: friday at: yesterday 3pm",
     "call about pricing", {"next": "friday", "at": "yesterday 3pm"}),
    ("call about pricing at: yesterday next: friday",
     "call about pricing", {"next": "friday", "at": "yesterday"}),
    ("聊了价格 下次：下周五 时间：昨天", "聊了价格", {"next": "下周五", "at": "昨天"}),
    ("聊了价格下次:周五", "聊了价格", {"next": "周五"}),
    ("Visited NEXT: Monday", "Visited", {"next": "Monday"}),
    ("met at the office, next time bring samples", "met at the office, next time bring samples", {}),
    ("下次再聊", "下次再聊", {}),
    ("format: pdf sent", "format: pdf sent", {}),  # 'at:' inside a word is no clause
    ("agreed at: 5% discount at: yesterday", "agreed at: 5% discount", {"at": "yesterday"}),
    ("just a note next:", "just a note", {"next": ""}),
    ("", "", {}),
])
def test_split_clauses(text, summary, clauses):
    assert split_clauses(text) == (summary, clauses)


# --- amounts ---------------------------------------------------------------------

@pytest.mark.parametrize("text, minor, currency", [
    ("12000", 1_200_000, "CNY"),
    ("12,000", 1_200_000, "CNY"),
    ("12，000", 1_200_000, "CNY"),
    ("12k", 1_200_000, "CNY"),
    ("12K", 1_200_000, "CNY"),
    ("1.5m", 150_000_000, "CNY"),
    ("1.2万", 1_200_000, "CNY"),
    ("1.2w", 1_200_000, "CNY"),
    ("3万5", 3_500_000, "CNY"),
    ("3万5千", 3_500_000, "CNY"),
    ("2千", 200_000, "CNY"),
    ("¥12000", 1_200_000, "CNY"),
    ("￥12,000", 1_200_000, "CNY"),
    ("RMB 500", 50_000, "CNY"),
    ("CNY500", 50_000, "CNY"),
    ("$300", 30_000, "USD"),
    ("＄300", 30_000, "USD"),
    ("US$300", 30_000, "USD"),
    ("300 USD", 30_000, "USD"),
    ("300usd", 30_000, "USD"),
    ("$300 USD", 30_000, "USD"),
    ("€50", 5_000, "EUR"),
    ("50 EUR", 5_000, "EUR"),
    ("£20", 2_000, "GBP"),
    ("12000元", 1_200_000, "CNY"),
    ("12000块", 1_200_000, "CNY"),
    ("300美元", 30_000, "USD"),
    ("99.99", 9_999, "CNY"),
])
def test_parse_amount(text, minor, currency):
    assert parse_amount(text, "CNY") == Money(minor, currency)


def test_parse_amount_default_currency_and_yen():
    assert parse_amount("300", "usd") == Money(30_000, "USD")
    assert parse_amount("¥300", "USD") == Money(30_000, "CNY")
    assert parse_amount("¥300", "JPY") == Money(30_000, "JPY")


@pytest.mark.parametrize("text", [
    "", "abc", "-300", "0", "0.00", "nan", "inf", "1e5", "12..0", "1,2",
    "$300 EUR", "300 XYZ", "12k5", "1万亿亿", "$", "12 000",
])
def test_parse_amount_rejects(text):
    with pytest.raises(UserError) as caught:
        parse_amount(text, "CNY")
    assert caught.value.key == "error.bad_amount"


@pytest.mark.parametrize("text, key", [
    ("12.345", "error.amount_too_precise"), ("0.004", "error.amount_too_precise"),
    ("1.234567k", "error.amount_too_precise"), ("1" * 20, "error.amount_too_large"),
    ("99999999999999999999", "error.amount_too_large"), ("20000000000000", "error.amount_too_large"),
])
def test_an_amount_past_the_cent_or_too_large_says_which(text, key):
    """Issue 15 item 7: `12.345` was stored as 12.35 and a huge number was "couldn't read"."""
    with pytest.raises(UserError) as caught:
        parse_amount(text, "CNY")
    assert caught.value.key == key
    assert parse_amount("1.2345万", "CNY") == Money(1_234_500, "CNY")  # exact to the cent: kept


# --- channels, fields, refs ----------------------------------------------------------

@pytest.mark.parametrize("word, channel", [
    ("call", "call"), ("Phone", "call"), ("电话", "call"), ("打电话", "call"), ("通话", "call"),
    ("call:", "call"), ("电话：", "call"), ("ｃａｌｌ：", "call"),
    ("visit", "visit"), ("拜访", "visit"), ("上门", "visit"), ("走访", "visit"),
    ("meeting", "meeting"), ("meet", "meeting"), ("会议", "meeting"), ("开会", "meeting"),
    ("见面", "meeting"), ("email", "email"), ("mail", "email"), ("邮件", "email"),
    ("电邮", "email"), ("wechat", "wechat"), ("微信", "wechat"), ("wx", "wechat"),
    ("message", "message"), ("msg", "message"), ("sms", "message"), ("text", "message"),
    ("短信", "message"), ("消息", "message"), ("信息", "message"),
    ("note", "note"), ("备注", "note"), ("笔记", "note"),
    ("pricing", None), ("", None), (":", None), ("call me", None),
])
def test_parse_channel(word, channel):
    assert parse_channel(word) == channel
    assert channel is None or channel in CHANNELS


def test_split_fields():
    tokens = tokenize('李伟 13800138000 company="Acme Ltd" 职位=经理 邮箱＝li@acme.cn tag:vip stage=')
    positional, fields = split_fields(tokens)
    assert [tok.text for tok in positional] == ["李伟", "13800138000", "tag:vip"]
    assert fields == {"company": "Acme Ltd", "title": "经理", "email": "li@acme.cn", "stage": ""}


@pytest.mark.parametrize("key, field", [
    ("姓名", "name"), ("名字", "name"), ("公司", "company"), ("职务", "title"), ("头衔", "title"),
    ("电话", "phone"), ("手机", "phone"), ("手机号", "phone"), ("邮件", "email"),
    ("E-mail", "email"), ("mail", "email"), ("地址", "address"), ("地区", "region"),
    ("区域", "region"), ("城市", "region"), ("行业", "industry"), ("规模", "size"),
    ("公司规模", "size"), ("性别", "gender"), ("生日", "birthday"), ("来源", "source"),
    ("阶段", "stage"), ("频率", "cadence"), ("周期", "cadence"), ("Cadence", "cadence"),
    ("偏好", "prefs"), ("备注", "prefs"), ("preferences", "prefs"), ("负责人", "owner"),
    ("ｃｏｍｐａｎｙ", "company"),
])
def test_field_aliases(key, field):
    assert split_fields(tokenize(f"{key}=x"))[1] == {field: "x"}


def test_every_canonical_field_is_its_own_alias():
    for name in FIELD_NAMES:
        assert split_fields(tokenize(f"{name}=v"))[1] == {name: "v"}


def test_split_fields_unknown_key():
    with pytest.raises(UserError) as caught:
        split_fields(tokenize("compnay=Acme"))
    assert caught.value.key == "error.unknown_field"
    assert caught.value.params["field"] == "compnay"
    assert "company" in caught.value.params["fields"]


def test_split_fields_leaves_non_keys_positional():
    tokens = tokenize("x+1=2 =foo https://a.b/?q=1 1=1")
    assert split_fields(tokens) == (tokens, {})


@pytest.mark.parametrize("text, ref", [
    ("#12", Ref("id", "12")),
    ("＃12", Ref("id", "12")),
    ("Li@Acme.CN", Ref("email", "li@acme.cn")),
    ("+86 138-0013-8000", Ref("phone", "+86 138-0013-8000")),
    ("(021) 5555 1234", Ref("phone", "(021) 5555 1234")),
    ("12345", Ref("name", "12345")),  # too few digits for a phone
    ("李伟", Ref("name", "李伟")),
    ("Li Wei", Ref("name", "Li Wei")),
    ("@liwei", Ref("name", "@liwei")),
    ("#abc", Ref("name", "#abc")),
    ("  ", Ref("name", "")),
])
def test_classify_ref(text, ref):
    assert classify_ref(text) == ref


# --- times of day and day counts ------------------------------------------------

@pytest.mark.parametrize("text, hhmm", [
    ("8:30", "08:30"), ("08:30", "08:30"), ("20:00", "20:00"), ("8点半", "08:30"),
    ("8点", "08:00"), ("晚上8点", "20:00"), ("8pm", "20:00"), ("8", "08:00"),
    ("０８：３０", "08:30"), ("0:00", "00:00"),
])
def test_parse_hhmm(text, hhmm):
    assert parse_hhmm(text) == hhmm


@pytest.mark.parametrize("text", ["", "24:00", "8:60", "25", "tomorrow", "8:3", "下午"])
def test_parse_hhmm_rejects(text):
    with pytest.raises(UserError) as caught:
        parse_hhmm(text)
    assert caught.value.key == "error.bad_time"


@pytest.mark.parametrize("text, days", [
    ("30d", 30), ("30", 30), ("2w", 14), ("30天", 30), ("2周", 14), ("两周", 14),
    ("30 days", 30), ("1 week", 7), ("3个月", 90), ("十五天", 15), ("３０ｄ", 30),
])
def test_parse_duration_days(text, days):
    assert parse_duration_days(text) == days


@pytest.mark.parametrize("text", ["", "0", "0d", "abc", "30x", "-3d", "3.5d", "99999d"])
def test_parse_duration_days_rejects(text):
    with pytest.raises(UserError) as caught:
        parse_duration_days(text)
    assert caught.value.key == "error.bad_days"


# --- fold and tokenize ------------------------------------------------------------

@pytest.mark.parametrize("text, folded", [
    ("下次：周五", "下次:周五"), ("１２，０００", "12,000"), ("（备注）", "(备注)"),
    ("＃１２", "#12"), ("公司＝Acme", "公司=Acme"), ("＠li", "@li"), ("＋86", "+86"),
    ("ｖｉｐ　客户", "vip 客户"), ("a\u200bb\ufeff", "ab"), ("\u202egnp.exe\u202c", "gnp.exe"), ("“李伟”「王」", "“李伟”「王」"),
    ("李伟，你好。", "李伟,你好。"),
])
def test_fold(text, folded):
    assert fold(text) == folded


@pytest.mark.parametrize("text, words", [
    ("a  b\tc\nd", ["a", "b", "c", "d"]),
    ('"Li Wei" call', ["Li Wei", "call"]),
    ("'Li Wei' call", ["Li Wei", "call"]),
    ("“李 伟” 电话", ["李 伟", "电话"]),
    ("「Acme Ltd」 x", ["Acme Ltd", "x"]),
    ("『王 芳』", ["王 芳"]),
    ('company="Acme Ltd" x', ["company=Acme Ltd", "x"]),
    ("don't worry", ["don't", "worry"]),
    ('"unclosed quote here', ["unclosed", "quote", "here"]),  # a quote never closed is not one
    ('a "Li Wei 13800138000', ["a", "Li", "Wei", "13800138000"]),
    ("‘x‘ y", ["x", "y"]),  # the same curly quote twice, as some keyboards type it
    ('""', [""]),
    ("", []),
    ("   ", []),
])
def test_tokenize(text, words):
    assert [tok.text for tok in tokenize(text)] == words


def test_tokenize_offsets_and_quoted():
    text = 'log "Li Wei" call'
    tokens = tokenize(text)
    assert tokens == [Token("log", False, 0, 3), Token("Li Wei", True, 4, 12),
                      Token("call", False, 13, 17)]
    assert [text[tok.start:tok.end] for tok in tokens] == ["log", '"Li Wei"', "call"]


# --- catalogue -------------------------------------------------------------------

_ERROR_CASES = [
    lambda: parse_when("nonsense", now=NOW, tz=SHANGHAI),
    lambda: parse_amount("nonsense", "CNY"),
    lambda: split_fields(tokenize("nonsense=1")),
    lambda: parse_hhmm("nonsense"),
    lambda: parse_duration_days("nonsense"),
]


@pytest.mark.parametrize("raise_error", _ERROR_CASES)
@pytest.mark.parametrize("locale", ["en", "zh"])
def test_every_error_renders_in_both_languages(raise_error, locale):
    with pytest.raises(UserError) as caught:
        raise_error()
    assert caught.value.key in catalogue(locale)
    assert "nonsense" in t(locale, caught.value.key, **caught.value.params)


def test_catalogues_agree_on_placeholders():
    for key, text in catalogue("en").items():
        if key.startswith("error.bad_") or key == "error.unknown_field":
            assert placeholders(catalogue("zh")[key]) == placeholders(text), key


# --- robustness -------------------------------------------------------------------

GRAMMAR_WORDS = [
    "next", "at", "next:", "at:", "下次:", "时间：", "tomorrow", "friday", "mon", "in",
    "days", "3d", "2w", "10am", "pm", "14:30", "下周五", "周", "星期", "下午", "点", "半",
    "十", "两", "天后", "个月", "年", "月", "日", "号", "call:", "电话", "#", "＃12", "@",
    "=", "＝", "company=", "公司=", '"', "'", "“", "”", "「", "」", "¥", "$", "万", "k",
    "w", ",", ".", ":", "：", "-", "+", "😀", "\u200b", "\x00", "\n", " ", "　",
    "<b>", "'; DROP TABLE x;--", "0", "9", "12", "99999999999999999999",
]
grammar_text = st.lists(
    st.one_of(st.sampled_from(GRAMMAR_WORDS), st.integers(-10, 10**6).map(str)),
    max_size=12,
).map("".join)
any_text = st.one_of(st.text(max_size=200), grammar_text)

PUBLIC_CALLS = [
    fold,
    tokenize,
    split_clauses,
    lambda s: parse_when(s, now=NOW, tz=SHANGHAI),
    lambda s: parse_when(s, now=NOW, tz=NEW_YORK, past=True),
    lambda s: parse_amount(s, "CNY"),
    parse_channel,
    lambda s: split_fields(tokenize(s)),
    classify_ref,
    parse_hhmm,
    parse_duration_days,
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=any_text)
def test_public_functions_return_or_raise_user_error(text):
    for call in PUBLIC_CALLS:
        try:
            call(text)
        except UserError as error:
            for locale in ("en", "zh"):
                t(locale, error.key, **error.params)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=300))
def test_tokenize_offsets_point_into_the_text(text):
    for token in tokenize(text):
        assert 0 <= token.start < token.end <= len(text)
        assert not text[token.start].isspace()


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.sampled_from("ab ，：（）\u3000\u200b李伟!:,ｖ"), max_size=40), data=st.data())
def test_as_typed_gives_back_what_was_typed_for_any_piece_of_the_folded_text(text, data):
    folded = fold(text)
    start = data.draw(st.integers(0, len(folded)))
    piece = folded[start:data.draw(st.integers(start, len(folded)))]
    typed = as_typed(text, piece)
    assert fold(typed) == piece and typed in text.replace("\u200b", "")


def test_as_typed_keeps_full_width_punctuation():
    assert as_typed("/log 李伟 拜访：带了样品，反馈不错", "带了样品,反馈不错") == "带了样品，反馈不错"
    assert as_typed("\u200b/log x: a，b", "a,b") == "a，b"
    assert as_typed("", "") == "" and as_typed("abc", "zzz") == "zzz"


def test_huge_and_hostile_inputs():
    hostile = ["x" * 10_000, "😀" * 10_000, "\x00\x01\x02" * 3000, "9" * 10_000,
               '"' * 10_000, "<script>alert(1)</script>", "next: " * 2000]
    started = time.perf_counter()
    for text in hostile:
        for call in PUBLIC_CALLS:
            try:
                call(text)
            except UserError:
                pass
    assert time.perf_counter() - started < 5
