"""Words before grammar: one spelling for each thing, and numbers in words or digits.

The Chinese grammar is written in Simplified characters; `normalise` maps the
Traditional variant of every character it knows (後, 個, 這, 週, 禮, 點, 時, 號, 節…)
and the Cantonese day words (聽日 tomorrow, 尋日 yesterday, 今個 this, 宜家 now,
晏晝 afternoon, 字 five minutes) onto it, so each rule is written once.
"""
from __future__ import annotations

import re

#: Traditional → Simplified, in pairs, for the characters the grammar and the holiday names use.
_TRADITIONAL_PAIRS = (
    "後后個个這这週周禮礼點点時时號号鐘钟頭头兩两節节聖圣誕诞慶庆國国萬万兒儿婦妇勞劳動动軍军"
    "門门歸归紀纪費费權权陽阳曆历農农歷历現现當当會会際际華华晝昼過过還还對对幾几邊边裡里裏里"
    "從从開开聽听尋寻間间來来愛爱親亲師师區区東东誰谁倫伦灣湾陰阴"
)
_TRADITIONAL = str.maketrans(_TRADITIONAL_PAIRS[0::2], _TRADITIONAL_PAIRS[1::2])
#: Cantonese and other regional words → the Mandarin the grammar reads (after the table above).
_REGIONAL = [
    ("大后日", "大后天"), ("后日", "后天"), ("听日", "明天"), ("寻日", "昨天"), ("琴日", "昨天"),
    ("今个", "这个"), ("宜家", "现在"), ("而家", "现在"), ("依家", "现在"), ("晏昼", "下午"),
    ("朝早", "早上"), ("夜晚", "晚上"), ("礼拜天", "礼拜日"), ("星期天", "星期日"), ("周天", "周日"),
    ("今星期", "这星期"), ("今礼拜", "这礼拜"), ("今周", "这周"), ("这一", "这"), ("此时", "现在"),
    ("此刻", "现在"), ("当前", "现在"), ("目前", "现在"), ("而今", "现在"),
    ("下昼", "下午"), ("上昼", "上午"), ("听朝", "明天早上"), ("今朝", "今天早上"), ("听晚", "明天晚上"),
    ("琴晚", "昨天晚上"), ("月尾", "月底"), ("今晚", "今天晚上"), ("明晚", "明天晚上"), ("昨晚", "昨天晚上"), ("今早", "今天早上"), ("明早", "明天早上"),
]
_REGIONAL_RE = re.compile("|".join(re.escape(a) for a, _ in sorted(_REGIONAL, key=lambda p: -len(p[0]))))
_REGIONAL_MAP = dict(_REGIONAL)

#: Words that hedge or pad a date without changing it; before a number they mean 'at' ('around 1030').
_FILLERS = re.compile(
    r"\b(?:around|about|approximately|approx\.?|roughly|circa|sometime|some time|during)\b(?P<number>\s+[0-9])?"
    r"|(?<=[0-9])ish\b|\bish\b|左右|大约|大概",
    re.I,
)


def normalise(text: str) -> str:
    """Lower-case, one space, Traditional and Cantonese folded, hedges out, `@` as `at`."""
    text = text.translate(_TRADITIONAL)
    text = _REGIONAL_RE.sub(lambda m: _REGIONAL_MAP[m.group()], text)
    text = text.lower().replace("@", " at ").replace("’", "'").replace("，", " ").replace(",", " ")
    text = _FILLERS.sub(lambda m: f" at{m['number']}" if m["number"] else " ", text)
    text = re.sub(r"[()（）]", " ", text)
    return " ".join(text.split()).strip(" .。")


# --- Chinese numbers ------------------------------------------------------------------

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4,
              "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
CN_NUM = "[零〇一二两三四五六七八九十廿卅]{1,4}"  # regex for a Chinese number (see cn_number)


def cn_number(text: str) -> int | None:
    """'12', '十二', '两', '二十三', '廿', '二〇二六' → int; None when it is not such a number."""
    if text.isascii() and text.isdigit():
        return int(text)
    text = text.replace("廿", "二十").replace("卅", "三十")
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
    if high is None or low is None or (tens and high == 0):
        return None
    return high * 10 + low


# --- English numbers --------------------------------------------------------------------

_UNITS_EN = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
             "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
             "nineteen"]
_TENS_EN = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50}
EN_NUMBER_WORDS = {word: n for n, word in enumerate(_UNITS_EN)} | _TENS_EN | {
    f"{tens}{sep}{unit}": value + n for tens, value in _TENS_EN.items()
    for n, unit in enumerate(_UNITS_EN[1:10], 1) for sep in (" ", "-")}
#: How many a vague count means: 'a couple of days' is 2, 'a few hours' 3.
EN_COUNTS = {"a": 1, "an": 1, "one": 1, "a single": 1, "a couple of": 2, "a couple": 2, "couple of": 2,
             "a pair of": 2, "a few": 3, "few": 3, "several": 3}
EN_NUMBER = "|".join(sorted((re.escape(w) for w in EN_NUMBER_WORDS), key=len, reverse=True))

_ORDINAL_WORDS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6,
                  "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12,
                  "thirteenth": 13, "fourteenth": 14, "fifteenth": 15, "sixteenth": 16,
                  "seventeenth": 17, "eighteenth": 18, "nineteenth": 19, "twentieth": 20, "thirtieth": 30}
EN_ORDINALS = _ORDINAL_WORDS | {
    f"{tens}{sep}{word}": value + _ORDINAL_WORDS[word] for tens, value in (("twenty", 20), ("thirty", 30))
    for word in ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth")
    for sep in (" ", "-") if value + _ORDINAL_WORDS[word] <= 31}
EN_ORDINAL = ("|".join(sorted((re.escape(w) for w in EN_ORDINALS), key=len, reverse=True))
              + r"|[0-9]{1,2}(?:st|nd|rd|th)")


def en_ordinal(text: str) -> int | None:
    """'3rd', 'third', 'twenty-first' → 3, 3, 21."""
    if text in EN_ORDINALS:
        return EN_ORDINALS[text]
    m = re.fullmatch(r"([0-9]{1,2})(st|nd|rd|th)", text)
    return int(m[1]) if m else None


def en_count(text: str) -> float | None:
    """'3', 'three', 'a couple of', '2.5', 'twenty-one' → how many."""
    text = text.strip()
    if re.fullmatch(r"[0-9]{1,4}(?:\.[0-9]{1,2})?", text):
        return float(text)
    return EN_COUNTS.get(text, EN_NUMBER_WORDS.get(text))
