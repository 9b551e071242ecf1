"""Workspace settings (/settings) and a member's own preferences (/me).

Both take `key=value` pairs (or `key value` for a single one); every value is
checked and written in a canonical form before anything is saved, so one bad
value changes nothing. Changes are audited before → after.
"""
from __future__ import annotations

import re
from functools import cache
from typing import Callable
from zoneinfo import available_timezones

import phonenumbers
from sqlalchemy import select

from handlers import identity
from handlers.context import Context
from handlers.errors import UserError
from handlers.i18n import normalize_locale
from handlers.messages import Field, Reply
from handlers.parsing import fold, parse_duration_days, parse_hhmm, tokenize
from handlers.registry import Result, command
from handlers.team import platform_label
from storage import audit, scoring, workspaces
from storage.models import Identity
from storage.standardise import visible

# --- reading values ------------------------------------------------------------------------

#: Active ISO 4217 codes.
CURRENCIES = frozenset("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD
CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD
GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT
LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR
NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP
STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG
XOF XPF YER ZAR ZMW ZWG
""".split())
_CURRENCY_WORDS = {"RMB": "CNY", "人民币": "CNY", "美元": "USD", "欧元": "EUR", "英镑": "GBP", "日元": "JPY", "港币": "HKD"}

#: Places people name instead of a zone; zone names and their cities (`berlin`) work anyway.
_ZONE_WORDS = {
    **dict.fromkeys(("beijing", "china", "北京", "上海", "深圳", "广州", "杭州", "成都", "中国"), "Asia/Shanghai"),
    "香港": "Asia/Hong_Kong", "台北": "Asia/Taipei", "新加坡": "Asia/Singapore", "东京": "Asia/Tokyo",
    "首尔": "Asia/Seoul", "伦敦": "Europe/London", "巴黎": "Europe/Paris", "柏林": "Europe/Berlin",
    "纽约": "America/New_York", "洛杉矶": "America/Los_Angeles", "悉尼": "Australia/Sydney",
    "san francisco": "America/Los_Angeles", "utc": "UTC", "gmt": "UTC",
}
_LOCALE_WORDS = {"english": "en", "英文": "en", "英语": "en", "chinese": "zh", "中文": "zh", "汉语": "zh", "简体中文": "zh"}
_VISIBILITY_WORDS = {"team": "team", "all": "team", "团队": "team", "全部": "team",
                     "own": "own", "mine": "own", "自己": "own", "本人": "own"}
_REGION_WORDS = {"UK": "GB", "中国": "CN"}
MAX_LIFETIME_YEARS = 50
MAX_BIRTHDAY_DAYS = 30


@cache
def _zones() -> dict[str, str]:
    """Lower-case zone names, and their last part as a city (`new york`), → the zone."""
    zones = sorted(z for z in available_timezones() if not z.startswith(("Etc/", "SystemV/", "posix/", "right/")))
    by_city = {z.rsplit("/", 1)[-1].replace("_", " ").lower(): z for z in reversed(zones) if "/" in z}
    return by_city | {z.lower(): z for z in zones}


def timezone_named(text: str) -> str | None:
    """`Asia/Shanghai`, `asia/shanghai`, `Berlin`, `new york`, `北京` → an IANA zone name."""
    key = " ".join(fold(text).replace("_", " ").split()).lower()
    return _ZONE_WORDS.get(key) or _zones().get(key) or _zones().get(key.replace(" ", "_"))


def locale_named(text: str) -> str | None:
    return _LOCALE_WORDS.get(text.casefold()) or normalize_locale(text, "") or None


def _bad(key: str, text: str, *, kind: str = "") -> UserError:
    """The error for a bad value of setting `key` (worded per `kind` of value, default the key)."""
    return UserError(f"error.setting.{kind or key}", value=" ".join(text.split())[:40], setting=key)


def _checked(key: str, value: str | None, text: str) -> str:
    if value is None:
        raise _bad(key, text)
    return value


def _days(key: str, text: str) -> int:
    try:
        return parse_duration_days(text)
    except UserError:
        raise _bad(key, text, kind="cadence") from None


def _clock(key: str, text: str) -> str:
    try:
        return parse_hhmm(text)
    except UserError:
        raise _bad(key, text, kind="time") from None


def _years(key: str, text: str) -> int:
    digits = fold(text).strip().lower().removesuffix("years").removesuffix("y").removesuffix("年").strip()
    if not (digits.isascii() and digits.isdigit()) or not 1 <= int(digits) <= MAX_LIFETIME_YEARS:
        raise _bad(key, text)
    return int(digits)


#: Words for "no birthday list" (`birthday_days=off`).
_OFF_WORDS = {"off", "no", "none", "关", "关闭", "不要"}


def _birthday_days(key: str, text: str) -> int:
    """0 (off) to `MAX_BIRTHDAY_DAYS` days: `3`, `3d`, `3天`, `off`, `关闭`."""
    word = fold(text).strip().lower()
    if word in _OFF_WORDS:
        return 0
    digits = word.removesuffix("days").removesuffix("d").removesuffix("天").strip()
    if not (digits.isascii() and digits.isdigit()) or int(digits) > MAX_BIRTHDAY_DAYS:
        raise _bad(key, text)
    return int(digits)


def _name(key: str, text: str) -> str:
    return _checked(key, " ".join(visible(text).split())[:200] or None, text)


#: setting → (Workspace column, reader of the typed value).
SETTINGS: dict[str, tuple[str, Callable[[str, str], str | int]]] = {
    "name": ("name", _name),
    "timezone": ("timezone", lambda k, v: _checked(k, timezone_named(v), v)),
    "locale": ("locale", lambda k, v: _checked(k, locale_named(v), v)),
    "currency": ("currency", lambda k, v: _checked(k, _currency(v), v)),
    "visibility": ("visibility", lambda k, v: _checked(k, _VISIBILITY_WORDS.get(v.casefold()), v)),
    "region": ("phone_region", lambda k, v: _checked(k, _region(v), v)),
    "cadence_a": ("cadence_a", _days),
    "cadence_b": ("cadence_b", _days),
    "cadence_c": ("cadence_c", _days),
    "cadence_none": ("cadence_none", _days),
    "digest_time": ("digest_time", _clock),
    "sweep_time": ("sweep_time", _clock),
    "lifetime_years": ("lifetime_years", _years),
    "birthday_days": ("birthday_days", _birthday_days),
}
#: Settings that change customers' derived data (stage, auto tags, LTV).
SCORED = {"cadence_a", "cadence_b", "cadence_c", "cadence_none", "lifetime_years", "currency"}
_SETTING_WORDS = {
    "tz": "timezone", "time_zone": "timezone", "时区": "timezone", "lang": "locale", "language": "locale",
    "语言": "locale", "货币": "currency", "币种": "currency", "可见范围": "visibility", "可见性": "visibility",
    "phone_region": "region", "地区": "region", "名称": "name", "团队名称": "name", "digest": "digest_time",
    "日报时间": "digest_time", "sweep": "sweep_time", "沉默检查时间": "sweep_time", "lifetime": "lifetime_years",
    "生命周期": "lifetime_years", "birthdays": "birthday_days", "birthday": "birthday_days", "生日提醒": "birthday_days",
    "生日": "birthday_days",
}
_CADENCE_KEY = re.compile(r"cadence_?(a|b|c|none)|周期_?(a|b|c)")


def _currency(text: str) -> str | None:
    code = _CURRENCY_WORDS.get(text.upper(), text.upper())
    return code if code in CURRENCIES else None


def _region(text: str) -> str | None:
    code = _REGION_WORDS.get(text.upper(), text.upper())
    return code if code in phonenumbers.SUPPORTED_REGIONS else None


def setting_named(word: str) -> str | None:
    """`timezone`, `tz`, `时区`, `cadence.A`, `cadenceA`, `cadence_a` → the setting's key."""
    key = fold(word).strip().lower().replace("-", "_").replace(".", "_").replace(" ", "_")
    if m := _CADENCE_KEY.fullmatch(key):
        return f"cadence_{m[1] or m[2]}"
    return key if key in SETTINGS else _SETTING_WORDS.get(key)


def key_values(text: str, usage: str) -> list[tuple[str, str]]:
    """`a=1 b="x y"` → [(a, 1), (b, x y)]; a single `key value…` is read as `key=value…`."""
    tokens = tokenize(text)
    pairs = [tok.text.partition("=") for tok in tokens]
    if all(sep for _, sep, _ in pairs):
        return [(key, value.strip()) for key, _, value in pairs]
    if len(tokens) >= 2 and not any(sep for _, sep, _ in pairs):
        return [(tokens[0].text, " ".join(tok.text for tok in tokens[1:]))]
    raise UserError(usage)


# --- /settings ---------------------------------------------------------------------------------

@command("settings", aliases=("设置",))
async def settings(ctx: Context, args: str) -> Result:
    """Everyone may look; only an admin may change (all given values, or none)."""
    if not args:
        return settings_card(ctx)
    ctx.scope.require_role("admin", "settings")
    wanted: dict[str, str | int] = {}
    for word, text in key_values(args, "error.settings_usage"):
        key = setting_named(word)
        if key is None:
            raise UserError("error.setting_unknown", setting=word[:40])
        wanted[key] = SETTINGS[key][1](key, text)
    workspace = ctx.ws
    before = {key: getattr(workspace, SETTINGS[key][0]) for key in wanted}
    old, new = audit.changes(before, wanted)
    if not new:
        return Reply(text=ctx.t("settings.unchanged"))
    for key, value in new.items():
        setattr(workspace, SETTINGS[key][0], value)
    audit.record(ctx.session, workspace_id=workspace.id, member_id=ctx.me.id, action="settings",
                 before=old, after=new, at=ctx.now)
    if SCORED & new.keys():
        await scoring.recompute_workspace(ctx.session, workspace, ctx.now)
    return Reply(text=ctx.t("settings.saved"),
                 items=[ctx.t("settings.change", setting=key, old=show_setting(ctx, key, old[key]),
                              new=show_setting(ctx, key, value)) for key, value in new.items()])


def show_setting(ctx: Context, key: str, value: object) -> str:
    if key == "locale":
        return f"{value} ({ctx.t(f'language.{value}')})"
    if key == "visibility":
        return ctx.t(f"settings.visibility.{value}")
    if key.startswith("cadence_"):
        return ctx.t("settings.days", count=value)
    if key == "lifetime_years":
        return ctx.t("settings.years", count=value)
    if key == "birthday_days":
        return ctx.t("settings.days_ahead", count=value) if value else ctx.t("settings.off")
    return str(value)


def settings_card(ctx: Context) -> Reply:
    workspace = ctx.ws
    admin = ctx.scope.at_least("admin")
    return Reply(
        title=ctx.t("settings.title", workspace=workspace.name),
        fields=[Field(ctx.t(f"settings.label.{key}"), show_setting(ctx, key, getattr(workspace, column)))
                for key, (column, _) in SETTINGS.items()],
        text=ctx.t("settings.how_admin" if admin else "settings.how_member"),
    )


# --- /me -----------------------------------------------------------------------------------------

_ME_KEYS = {"tz": "timezone", "timezone": "timezone", "time_zone": "timezone", "时区": "timezone",
            "lang": "locale", "language": "locale", "locale": "locale", "语言": "locale"}
_ME_READERS: dict[str, Callable[[str], str | None]] = {"timezone": timezone_named, "locale": locale_named}


@command("me", aliases=("我",))
async def me(ctx: Context, args: str) -> Result:
    """Show my profile; `tz=` and `lang=` change my time zone and language (empty: the team's)."""
    member = ctx.me
    wanted: dict[str, str | None] = {}
    for word, text in key_values(args, "error.me_usage") if args else []:
        key = _ME_KEYS.get(fold(word).strip().lower())
        if key is None:
            raise UserError("error.me_usage")
        wanted[key] = _ME_READERS[key](text) if text else None
        if text and wanted[key] is None:
            raise _bad(key, text)
    old, new = audit.changes({key: getattr(member, key) for key in wanted}, wanted)
    if new:
        for key, value in new.items():
            setattr(member, key, value)
        audit.record(ctx.session, workspace_id=ctx.ws.id, member_id=member.id, action="me",
                     before=old, after=new, at=ctx.now)
        account = await workspaces.membership_in(ctx.session, ctx.request.platform, ctx.request.user_id, ctx.ws.id)
        if account is not None:
            identity.enter(ctx, ctx.ws, member, account.identity)  # the reply already speaks the new language
    return await me_card(ctx, ctx.t("me.saved") if new else "")


async def me_card(ctx: Context, note: str) -> Reply:
    member = ctx.me
    accounts = await ctx.session.scalars(select(Identity.platform).where(Identity.member_id == member.id))
    default = ctx.t("me.default")
    digest = (ctx.t("me.digest_on", time=member.digest_time or ctx.ws.digest_time)
              if member.digest_enabled else ctx.t("me.digest_off"))
    fields = [
        Field(ctx.t("me.name"), member.name),
        Field(ctx.t("me.role"), ctx.t(f"role.{member.role}")),
        Field(ctx.t("me.timezone"), ctx.tz.key + ("" if member.timezone else default)),
        Field(ctx.t("me.language"), ctx.t(f"language.{ctx.locale}") + ("" if member.locale else default)),
        Field(ctx.t("me.digest"), digest),
        Field(ctx.t("me.accounts"), ctx.listed(sorted({platform_label(ctx, p) for p in accounts}))),
    ]
    lines = [note] if note else []
    lines.append(ctx.t("me.how"))
    return Reply(title=ctx.t("me.title", workspace=ctx.ws.name), fields=fields, text="\n".join(lines))
