"""Reading the command language (SPEC §3): pure functions, no database, no platform.

Everything here either returns a value or raises `UserError` with a catalogue
key (see locales/*/parsing.toml) — never anything else, whatever the input.
Dates live in `handlers.dates`; `parse_when` and `When` are re-exported here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from handlers import dates
from handlers.dates import When, cn_number
from handlers.errors import UserError
from storage.standardise import INVISIBLE

__all__ = [
    "CHANNELS", "FIELD_ALIASES", "FIELD_NAMES", "Money", "Ref", "Token", "When",
    "as_typed", "classify_ref", "fold", "parse_amount", "parse_channel", "parse_duration_days",
    "parse_hhmm", "parse_when", "split_clauses", "split_fields", "split_when", "tokenize",
]

# --- folding and tokens ---------------------------------------------------------

#: Invisible characters, and the direction overrides that could flip how a reply reads (U+202E): the
#: same set storage drops from every text it stores.
_ZERO_WIDTH = INVISIBLE
_FOLD = {
    **{code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)},  # ！…～ → !…~
    0x3000: " ",  # ideographic space
    0x00A0: " ",  # no-break space
    **{ord(ch): None for ch in _ZERO_WIDTH},
}


def fold(text: str) -> str:
    """Full-width ASCII → half-width and invisible characters out, so `：`, `＃12`
    and `ｖｉｐ` read like `:`, `#12` and `vip`. CJK text and curly or corner
    quotes (which `tokenize` understands) are left alone."""
    return text.translate(_FOLD)


_ZERO_WIDTH_OUT = {ord(ch): None for ch in _ZERO_WIDTH}


def as_typed(original: str, folded_part: str) -> str:
    """`folded_part` (a piece of `fold(original)`) with the characters the member typed.

    Commands are read folded, but free text (a summary, a note, a comment)
    should keep its `，` and `：`. Folding maps one character to one once the
    invisible ones are out, so the piece sits at the same place in both; when
    it occurs more than once the last one is taken, as free text ends a command.
    """
    visible = original.translate(_ZERO_WIDTH_OUT)
    at = visible.translate(_FOLD).rfind(folded_part) if folded_part else -1
    return visible[at:at + len(folded_part)] if at >= 0 else folded_part


@dataclass(frozen=True)
class Token:
    text: str
    quoted: bool
    start: int  # offsets of the raw token (quotes included) in the tokenized string
    end: int


# opening quote → the characters that close it
_QUOTES = {'"': '"', "'": "'", "“": "”“", "”": "”“", "‘": "’‘", "「": "」", "『": "』"}


def tokenize(text: str) -> list[Token]:
    """Split on whitespace like a shell; quotes group words.

    A quote opens only at the start of a word or right after `=` (so `don't`
    and `O'Brien` stay whole while `company="Acme Ltd"` groups). A quote that
    is never closed is dropped and the words split as if it were not there, so a
    forgotten closing quote in `/add "Li Wei 13800138000` still finds the phone.
    """
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start, parts, quoted = i, [], False
        while i < n and not text[i].isspace():
            ch = text[i]
            if ch in _QUOTES and (i == start or text[i - 1] == "="):
                closed = _quoted_part(text, i)
                if closed is None:  # never closed: not a quote
                    i += 1
                    continue
                inner, i = closed
                parts.append(inner)
                quoted = True
            else:
                parts.append(ch)
                i += 1
        tokens.append(Token("".join(parts), quoted, start, i))
    return tokens


def _quoted_part(text: str, i: int) -> tuple[str, int] | None:
    """The text inside the quote opening at `i` and where reading goes on; None if it never closes."""
    closers = _QUOTES[text[i]]
    for j in range(i + 1, len(text)):
        if text[j] in closers:
            return text[i + 1:j], j + 1
    return None


# --- trailing clauses -------------------------------------------------------------

_CLAUSE = re.compile(r"(?:(?<![A-Za-z0-9_])(next|at)|(下次|时间))\s*[:：]", re.I)
_CLAUSE_KEYS = {"next": "next", "下次": "next", "at": "at", "时间": "at"}


def split_clauses(text: str) -> tuple[str, dict[str, str]]:
    """Cut `next: <when>` / `at: <when>` (下次: / 时间:) clauses off the end.

    Read from the end backwards: a clause runs to the next clause; a key seen
    twice ends the clauses, so an earlier `at:` stays in the summary.
    """
    clauses: dict[str, str] = {}
    end = len(text)
    for m in reversed(list(_CLAUSE.finditer(text))):
        key = _CLAUSE_KEYS[(m[1] or m[2]).lower()]
        if key in clauses:
            break
        clauses[key] = text[m.end():end].strip()
        end = m.start()
    return text[:end].strip(), clauses


# --- dates ------------------------------------------------------------------------


def parse_when(text: str, *, now: datetime, tz: ZoneInfo, past: bool = False) -> When:
    """A natural date in the member's zone `tz`, relative to the clock's `now`.

    English and Chinese: tomorrow, friday, next monday 10am, in 3 days, 3d, 2w,
    3h, 30m, 2026-12-01 14:00, 12/01, 10am, tonight, 明天, 下周五, 周五,
    下周一上午10点, 晚上8点, 3天后, 半小时后, 下个月, 12月1日下午2点 …
    A date alone means 09:00; durations count from now. `past=True` (for `at:`)
    reads 'friday' as the last one. Raises UserError('error.bad_date').
    """
    return dates.parse_when(fold(text), now=now, tz=tz, past=past)


def split_when(text: str, *, now: datetime, tz: ZoneInfo, past: bool = False) -> tuple[When, str]:
    """The longest leading part of `text` that is a date, and the words after it (a note):
    `friday bring samples` → (friday, 'bring samples'); `月底前打电话` → (月底, '打电话').
    Raises UserError('error.bad_date') naming the text when it does not start with a date."""
    return dates.split_leading(fold(text), now, tz, past)


def parse_hhmm(text: str) -> str:
    """'8:30', '8点半', '20:00', '8pm', '8' → 'HH:MM' (digest and sweep times)."""
    folded = fold(text).strip()
    if re.fullmatch(r"[0-9]{1,2}", folded) and int(folded) < 24:
        return f"{int(folded):02d}:00"
    clock = dates.read_clock(folded) if len(folded) <= dates.MAX_DATE_LEN else None
    if clock is None:
        raise UserError("error.bad_time", text=_shorten(text))
    return f"{clock[0]:02d}:{clock[1]:02d}"


_DAY_UNITS = {"": 1, "d": 1, "day": 1, "days": 1, "天": 1, "日": 1,
              "w": 7, "wk": 7, "wks": 7, "week": 7, "weeks": 7,
              "周": 7, "个周": 7, "星期": 7, "个星期": 7, "礼拜": 7, "个礼拜": 7,
              "mo": 30, "month": 30, "months": 30, "个月": 30}
_DAYS = re.compile(rf"(?P<n>[0-9]{{1,4}}|{dates.CN_NUM})\s*(?P<unit>[^\s0-9]*)", re.I)
MAX_DAYS = 3650


def parse_duration_days(text: str) -> int:
    """'30d', '30', '2w', '30天', '2周', '两周' → whole days (silent:30d, cadence)."""
    m = _DAYS.fullmatch(fold(text).strip())
    factor = _DAY_UNITS.get(m["unit"].lower()) if m else None
    count = cn_number(m["n"]) if m else None
    if factor is None or not count or count * factor > MAX_DAYS:
        raise UserError("error.bad_days", text=_shorten(text))
    return count * factor


# --- amounts ------------------------------------------------------------------

@dataclass(frozen=True)
class Money:
    minor: int  # hundredths of the major unit (cents/分), > 0
    currency: str  # ISO 4217, upper-case


_CURRENCY_CODES = frozenset(
    "CNY USD EUR GBP JPY HKD TWD MOP SGD AUD NZD CAD CHF KRW INR RUB MYR THB VND "
    "IDR PHP SEK NOK DKK PLN BRL MXN ZAR AED SAR TRY".split())
_CURRENCY_WORDS = {
    "$": "USD", "us$": "USD", "美元": "USD", "美金": "USD", "刀": "USD",
    "€": "EUR", "欧元": "EUR", "£": "GBP", "英镑": "GBP", "日元": "JPY",
    "hk$": "HKD", "港币": "HKD", "港元": "HKD", "rmb": "CNY", "元": "CNY",
    "块": "CNY", "块钱": "CNY", "人民币": "CNY",
}
_SCALES = {"": 1, "k": 1000, "千": 1000, "w": 10_000, "万": 10_000,
           "m": 1_000_000, "mn": 1_000_000, "百万": 1_000_000, "亿": 100_000_000,
           "bn": 1_000_000_000}
_AMOUNT = re.compile(
    r"(?P<pre>[a-z]{2}\$|[a-z]{3}|[$€£¥￥])?\s*"
    r"(?P<num>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.(?P<frac>[0-9]+))?\s*"
    r"(?P<scale>百万|mn|bn|[kmw千万亿])?"
    r"(?:(?P<rest>[0-9])千?)?\s*"  # 3万5 = 35,000
    r"(?P<post>[a-z]{3}|块钱|人民币|[^\s0-9a-z]{1,2})?",
    re.I,
)
MAX_MAJOR = 10**13


def parse_amount(text: str, default_currency: str) -> Money:
    """'12000', '12,000', '12k', '1.2万', '1.2w', '3万5', '¥12000', 'RMB 500',
    'US$300', '300 usd', '€50', '12000元' → Money, in whole cents (`12.345` is refused, not rounded).

    ¥ is CNY, unless the workspace currency is JPY.
    """
    folded = fold(text).strip()
    m = _AMOUNT.fullmatch(folded) if len(folded) <= 40 else None
    currency = _amount_currency(m, default_currency) if m else None
    if currency is None or (m["rest"] and m["scale"] not in ("万", "w", "W")):
        raise UserError("error.bad_amount", text=_shorten(text))
    number = Decimal(m["num"].replace(",", "") + "." + (m["frac"] or "0"))
    major = number * _SCALES[(m["scale"] or "").lower()] + int(m["rest"] or 0) * 1000
    if major > MAX_MAJOR:  # also keeps quantize within Decimal's precision
        raise UserError("error.amount_too_large", text=_shorten(text), limit=f"{MAX_MAJOR:,}")
    minor = int((major * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if minor != major * 100:  # 12.345: a fraction of a cent is a typo, never silently rounded away
        raise UserError("error.amount_too_precise", text=_shorten(text))
    if minor <= 0:
        raise UserError("error.bad_amount", text=_shorten(text))
    return Money(minor, currency)


def _amount_currency(m: re.Match, default: str) -> str | None:
    """The currency named before and/or after the number (they must agree)."""
    named = {_currency_of(word, default) for word in (m["pre"], m["post"]) if word}
    if None in named or len(named) > 1:
        return None
    return named.pop() if named else default.upper()


def _currency_of(word: str, default: str) -> str | None:
    word = word.lower()
    if word in ("¥", "￥"):
        return "JPY" if default.upper() == "JPY" else "CNY"
    if word.upper() in _CURRENCY_CODES:
        return word.upper()
    return _CURRENCY_WORDS.get(word)


# --- channels ---------------------------------------------------------------------

CHANNELS = ("call", "visit", "meeting", "email", "wechat", "message", "note")
_CHANNEL_WORDS = {
    "call": ("call", "phone", "电话", "打电话", "通话"),
    "visit": ("visit", "拜访", "上门", "走访"),
    "meeting": ("meeting", "meet", "会议", "开会", "见面"),
    "email": ("email", "mail", "邮件", "电邮"),
    "wechat": ("wechat", "微信", "wx"),
    "message": ("message", "msg", "sms", "text", "短信", "消息", "信息"),
    "note": ("note", "备注", "笔记"),
}
_CHANNEL_OF = {word: channel for channel, words in _CHANNEL_WORDS.items() for word in words}


def parse_channel(word: str) -> str | None:
    """A channel word ('call', '电话', 'wx:', '微信：') → its canonical name, else None."""
    key = fold(word).strip()
    return _CHANNEL_OF.get(key.removesuffix(":").strip().lower())


# --- fields -------------------------------------------------------------------

FIELD_NAMES = ("name", "company", "title", "phone", "email", "address", "region",
               "industry", "size", "gender", "birthday", "source", "stage",
               "cadence", "prefs", "owner")
_FIELD_WORDS = {
    "name": ("姓名", "名字"),
    "company": ("公司",),
    "title": ("职位", "职务", "头衔"),
    "phone": ("电话", "手机", "手机号", "tel", "mobile"),
    "email": ("邮箱", "邮件", "e-mail", "mail"),
    "address": ("地址",),
    "region": ("地区", "区域", "城市"),
    "industry": ("行业",),
    "size": ("规模", "公司规模"),
    "gender": ("性别",),
    "birthday": ("生日",),
    "source": ("来源",),
    "stage": ("阶段",),
    "cadence": ("频率", "周期"),
    "prefs": ("偏好", "备注", "preferences"),
    "owner": ("负责人",),
}
FIELD_ALIASES = {name: name for name in FIELD_NAMES} | {
    alias: name for name, aliases in _FIELD_WORDS.items() for alias in aliases}
_FIELD_KEY = re.compile(r"[^\W\d_][\w-]*")  # a word: keeps 'x=1+2' or URLs positional
#: `tags=…` is not a field (SPEC §1: tags come with /tag); the error says so rather than list fields.
_TAG_KEYS = frozenset({"tag", "tags", "标签"})


def split_fields(tokens: list[Token]) -> tuple[list[Token], dict[str, str]]:
    """Pull `key=value` tokens out of `tokens`; keys in English or Chinese.

    `field=` gives '' (clear the field). `tag:vip` is positional: only `=`
    (or `＝`) makes a field. An unknown key raises UserError('error.unknown_field').
    """
    positional: list[Token] = []
    fields: dict[str, str] = {}
    for token in tokens:
        key, sep, value = token.text.replace("＝", "=").partition("=")
        key = fold(key).strip()
        if not sep or not _FIELD_KEY.fullmatch(key):
            positional.append(token)
            continue
        name = FIELD_ALIASES.get(key.lower())
        if name is None and key.lower() in _TAG_KEYS:
            raise UserError("error.tags_not_a_field", tags=_shorten(value.strip()) or "vip")
        if name is None:
            raise UserError("error.unknown_field", field=_shorten(key),
                            fields=", ".join(FIELD_NAMES))
        fields[name] = value.strip()
    return positional, fields


# --- customer references ----------------------------------------------------------

@dataclass(frozen=True)
class Ref:
    kind: Literal["id", "phone", "email", "name"]
    value: str  # id: the digits; phone: as typed; email: lower-case; name: as typed


_ID = re.compile(r"#\s*([0-9]{1,18})")
_EMAIL = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")
_PHONE = re.compile(r"[0-9+\-()\s]+")


def classify_ref(text: str) -> Ref:
    """`#12` → id, `a@b.co` → email, 6+ digits with + - ( ) → phone, else a name.

    Values are folded and stripped (`＃１２` is id '12'); an empty text is an
    empty name, for the caller to refuse.
    """
    folded = fold(text).strip()
    if m := _ID.fullmatch(folded):
        return Ref("id", m[1])
    if _EMAIL.fullmatch(folded):
        return Ref("email", folded.lower())
    if _PHONE.fullmatch(folded) and sum(ch.isdigit() for ch in folded) >= 6:
        return Ref("phone", folded)
    return Ref("name", folded)


def _shorten(text: str, limit: int = 40) -> str:
    """User input echoed in an error: one line, not a wall of text."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
