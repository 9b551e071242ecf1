"""Date phrases: the project's parser scored on Duckling's English and Chinese time corpora.

Each case of `../shared/dates/duckling_{en,zh}.json` has a text, a reference
time (Tue 2013-02-12 04:30 at UTC-2), Duckling's answer as a local wall time and
its grain. A reading is *right* when it equals Duckling's at that grain (day:
the date; hour: date and hour; minute, second likewise; week: the same Mon–Sun
week), *defensible* when it differs in one of the documented ways listed in
`DEFENSIBLE` (each is in the README), *wrong* otherwise, and *refused* when the
parser raises the project's UserError. In scope: grain second to week, Duckling's
"latent" readings (a bare `7`) left out; holiday phrases and the negative corpus
(phrases that must not parse) are counted on their own lines.

    python bench/dates.py [--corpus DIR] [--engines] [--show wrong|refused|defensible|all]

`--engines` also scores the other engines that are installed (parsedatetime,
ctparse, recognizers-text-date-time, a Duckling binding), as measured for the
README's comparison; none of them is needed to run the bench.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from handlers.errors import UserError  # noqa: E402
from handlers.parsing import parse_when  # noqa: E402

GRAINS = ("second", "minute", "hour", "day", "week")
TARGETS = {"zh": 0.95, "en": 0.90}
MAX_WRONG = 0.01
#: The corpora's reference time is at UTC-2 (the tz database writes it Etc/GMT+2).
ZONE = ZoneInfo("Etc/GMT+2")

Reading = Callable[[str, datetime, str], "datetime | None"]  # (text, local now, lang) → local wall time


@dataclass(frozen=True)
class Case:
    lang: str
    text: str
    now: datetime  # aware, the corpus's reference time
    expected: datetime | None  # naive local wall time; None for a negative
    grain: str | None
    holiday: str | None
    section: str


def load(folder: Path, lang: str) -> list[Case]:
    data = json.loads((folder / f"duckling_{lang}.json").read_text(encoding="utf-8"))
    cases = [Case(lang, c["text"], datetime.fromisoformat(c["now"]),
                  datetime.fromisoformat(c["expected"]) if c["expected"] else None,
                  c["grain"], c.get("holiday"), c["section"]) for c in data["cases"]]
    return cases + [Case(lang, c["text"], datetime.fromisoformat(c["now"]), None, None, None, "negative")
                    for c in data["negative"]]


def same_at_grain(got: datetime, expected: datetime, grain: str) -> bool:
    if grain == "week":
        return got.date() - timedelta(days=got.weekday()) == expected.date() - timedelta(days=expected.weekday())
    width = {"day": 10, "hour": 13, "minute": 16, "second": 19}[grain]
    return got.isoformat()[:width] == expected.isoformat()[:width]


# --- documented deliberate differences (README: "Dates: where we read differently from Duckling") --

def _next_week_weekday(case: Case, got: datetime) -> bool:
    """下周三 / 下星期三 is Wednesday of next Mon–Sun week, as 下周二 is; Duckling gives tomorrow."""
    monday = case.now.date() - timedelta(days=case.now.weekday())
    return case.text.startswith("下") and got.date() - timedelta(days=got.weekday()) == monday + timedelta(weeks=1) \
        and got.weekday() == case.expected.weekday()


def _this_week_weekday(case: Case, got: datetime) -> bool:
    """这周一 / 這禮拜一 / 今個星期一 is Monday of this week even once it has passed; Duckling jumps a week."""
    monday = case.now.date() - timedelta(days=case.now.weekday())
    return case.lang == "zh" and got.date() - timedelta(days=got.weekday()) == monday \
        and got.weekday() == case.expected.weekday()


def _named_day_kept(case: Case, got: datetime) -> bool:
    """'this morning at 3' is today 03:00 even when that has passed (a named day is kept); Duckling moves it
    to tomorrow. The reminder commands then say it is in the past instead of silently shifting the day."""
    return got.date() == case.now.date() and got.time() == case.expected.time() \
        and case.expected.date() == case.now.date() + timedelta(days=1)


def _twelve_with_period(case: Case, got: datetime) -> bool:
    """'this afternoon at 12' is 12:00 noon; Duckling reads midnight."""
    return case.expected.hour == 0 and got.hour == 12 and "afternoon" in case.text.lower()


_NO_PERIOD = re.compile(r"[ap]\.?\s?m\b|morning|afternoon|evening|night|tonight|noon|上午|下午|晚|早|凌晨|中午")


def _working_hours(case: Case, got: datetime) -> bool:
    """An hour 1–6 with neither am/pm nor a period word is afternoon ('at 4:23' → 16:23); Duckling
    takes the nearest on a 12-hour clock, which is 04:23, a time no sales call is set for."""
    return got.date() == case.expected.date() and got.hour == case.expected.hour + 12 \
        and 1 <= case.expected.hour <= 6 and got.minute == case.expected.minute \
        and not _NO_PERIOD.search(case.text.lower())


def _time_alone_ahead(case: Case, got: datetime) -> bool:
    """A time alone is its next occurrence: at 04:30, '4:23am' is tomorrow's, not 7 minutes ago."""
    return got - timedelta(days=1) == case.expected and case.expected < case.now.replace(tzinfo=None) \
        and got > case.now.replace(tzinfo=None)


def _years_keep_day(case: Case, got: datetime) -> bool:
    """'in 4 years at 5pm' keeps today's day of the month; Duckling moves it to the 1st."""
    return case.expected.day == 1 and got.replace(day=1) == case.expected and got.day == case.now.day


DEFENSIBLE = (_next_week_weekday, _this_week_weekday, _named_day_kept, _twelve_with_period, _working_hours,
              _time_alone_ahead, _years_keep_day)


def verdict(case: Case, got: datetime | None, *, ours: bool) -> str:
    if case.expected is None:
        return "refused" if got is None else "wrong"
    if got is None:
        return "refused"
    if same_at_grain(got, case.expected, case.grain):
        return "right"
    if ours and any(rule(case, got) for rule in DEFENSIBLE):
        return "defensible"
    return "wrong"


# --- engines -----------------------------------------------------------------------

def crm_bot(text: str, now: datetime, lang: str) -> datetime | None:
    try:
        return parse_when(text, now=now, tz=ZONE).at.astimezone(ZONE).replace(tzinfo=None)
    except UserError:
        return None


def dateparser_alone(text: str, now: datetime, lang: str) -> datetime | None:
    import dateparser

    found = dateparser.parse(text, languages=[lang], settings={
        "RELATIVE_BASE": now.replace(tzinfo=None), "PREFER_DATES_FROM": "future"})
    if found is not None and found.tzinfo is not None:  # a zone named in the text
        found = found.astimezone(ZONE).replace(tzinfo=None)
    return found


def parsedatetime_engine(text: str, now: datetime, lang: str) -> datetime | None:
    import parsedatetime

    found, context = parsedatetime.Calendar(version=parsedatetime.VERSION_CONTEXT_STYLE).parseDT(
        text, sourceTime=now.replace(tzinfo=None))
    return found if context.hasDateOrTime else None


def ctparse_engine(text: str, now: datetime, lang: str) -> datetime | None:
    from ctparse import ctparse
    from ctparse.types import Interval, Time

    logging.getLogger("ctparse").setLevel(logging.ERROR)

    parsed = ctparse(text, ts=now.replace(tzinfo=None), timeout=1)
    moment = parsed.resolution if parsed else None
    if isinstance(moment, Interval):
        moment = moment.t_from
    if not isinstance(moment, Time) or moment.year is None or moment.month is None or moment.day is None:
        return None
    return datetime(moment.year, moment.month, moment.day, moment.hour or 0, moment.minute or 0)


def recognizers_engine(text: str, now: datetime, lang: str) -> datetime | None:
    from recognizers_date_time import recognize_datetime
    from recognizers_text import Culture

    culture = Culture.Chinese if lang == "zh" else Culture.English
    results = recognize_datetime(text, culture, reference=now.replace(tzinfo=None))
    for result in results:
        values = [v for v in (result.resolution or {}).get("values", []) if "value" in v or "start" in v]
        moments = []
        for value in values:
            raw = value.get("value") or value.get("start")
            try:
                moment = datetime.fromisoformat(raw) if "-" in raw else datetime.combine(
                    now.date(), datetime.strptime(raw, "%H:%M:%S").time())
            except (TypeError, ValueError):
                continue
            moments.append(moment)
        if moments:
            later = [m for m in moments if m >= now.replace(tzinfo=None)]
            return min(later) if later else max(moments)
    return None


_DUCKLING: dict = {}


def duckling_engine(text: str, now: datetime, lang: str) -> datetime | None:
    import duckling

    if not _DUCKLING:
        _DUCKLING["zones"] = duckling.load_time_zones("/usr/share/zoneinfo")
        _DUCKLING["dims"] = duckling.parse_dimensions(["time"])
    ref = duckling.parse_ref_time(_DUCKLING["zones"], "Etc/GMT+2", int(now.timestamp()))
    context = duckling.Context(ref, duckling.default_locale_lang(duckling.parse_lang(lang.upper())))
    found = [e for e in duckling.parse(text, context, _DUCKLING["dims"], False) if e["value"].get("value")]
    if not found:
        return None
    best = max(found, key=lambda e: e["end"] - e["start"])
    return datetime.fromisoformat(best["value"]["value"]).astimezone(ZONE).replace(tzinfo=None)


ENGINES: dict[str, Reading] = {
    "parsedatetime": parsedatetime_engine,
    "ctparse": ctparse_engine,
    "recognizers-text": recognizers_engine,
    "duckling (pyduckling-native)": duckling_engine,
}


# --- scoring -----------------------------------------------------------------------

def in_scope(case: Case) -> bool:
    return case.grain in GRAINS and case.holiday is None and case.section not in ("latent", "negative")


def score(cases: list[Case], engine: Reading, *, ours: bool,
          times: list[float] | None = None) -> tuple[dict[str, int], list[tuple[Case, str, str]]]:
    counts = {"right": 0, "defensible": 0, "wrong": 0, "refused": 0}
    details = []
    for case in cases:
        started = time.perf_counter()
        try:
            got = engine(case.text, case.now, case.lang)
        except Exception as error:  # another engine's crash is its refusal; ours must never raise
            if ours:
                raise
            got = None
            del error
        if times is not None:
            times.append(time.perf_counter() - started)
        result = verdict(case, got, ours=ours)
        counts[result] += 1
        details.append((case, result, got.isoformat(timespec="minutes") if got else "—"))
    return counts, details


def line(label: str, counts: dict[str, int]) -> str:
    total = sum(counts.values())
    good = counts["right"] + counts["defensible"]
    share = f"{good / total:6.1%}" if total else "   —  "
    return (f"  {label:<34} {total:>4}  right {counts['right']:>4}  defensible {counts['defensible']:>3}  "
            f"wrong {counts['wrong']:>3}  refused {counts['refused']:>4}  → {share} right or defensible")


def run(folder: Path, show: str | None, engines: bool) -> bool:
    met = True
    for lang in ("zh", "en"):
        cases = load(folder, lang)
        groups = {
            "in scope": [c for c in cases if in_scope(c)],
            "holidays": [c for c in cases if c.holiday],
            "negative (must be refused)": [c for c in cases if c.section == "negative"],
        }
        print(f"\n{lang}: Duckling corpus, reference {cases[0].now.isoformat()}")
        for name, group in groups.items():
            if not group:
                continue
            times: list[float] = []
            ours, details = score(group, crm_bot, ours=True, times=times)
            times.sort()
            print(f" {name}:")
            print(line("crm-bot", ours) + f"  (p50 {times[len(times) // 2] * 1000:.2f} ms, "
                  f"p95 {times[int(len(times) * 0.95)] * 1000:.2f} ms a phrase)")
            print(line("dateparser alone", score(group, dateparser_alone, ours=False)[0]))
            if engines:
                for label, engine in ENGINES.items():
                    try:
                        print(line(label, score(group, engine, ours=False)[0]))
                    except ImportError:
                        print(f"  {label:<34} not installed")
            total = sum(ours.values())
            if name == "in scope":
                good = (ours["right"] + ours["defensible"]) / total
                ok = good >= TARGETS[lang] and ours["wrong"] <= MAX_WRONG * total
                print(f"  target: ≥ {TARGETS[lang]:.0%} right or defensible, ≤ {MAX_WRONG:.0%} wrong → "
                      f"{'met' if ok else 'NOT met'}")
                met &= ok
            elif name.startswith("negative"):
                ok = ours["refused"] == total
                print(f"  target: every negative refused → {'met' if ok else 'NOT met'}")
                met &= ok
            for case, result, got in details:
                if show and (show == "all" or result == show):
                    print(f"    {result:<10} {case.text!r:<44} got {got:<17} expected "
                          f"{case.expected.isoformat(timespec='minutes') if case.expected else '—'} ({case.grain})")
    print(f"\nall targets {'met' if met else 'NOT met'}")
    return met


def default_folder() -> Path | None:
    for parent in ROOT.parents:
        if (parent / "shared" / "dates").is_dir():
            return parent / "shared" / "dates"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=None, help="folder with duckling_en.json and duckling_zh.json")
    parser.add_argument("--engines", action="store_true", help="also score the other installed engines")
    parser.add_argument("--show", choices=("wrong", "refused", "defensible", "right", "all"))
    args = parser.parse_args()
    folder = args.corpus or default_folder()
    if folder is None or not (folder / "duckling_en.json").is_file():
        print(f"no Duckling corpora found ({folder or '../shared/dates/'}); nothing to measure")
        return
    run(folder, args.show, args.engines)


if __name__ == "__main__":
    main()
