"""The Monday digest's chart: activity per rep and revenue per week, as a small PNG.

Rendered off-screen with matplotlib's Agg canvas on a `Figure` of its own (no
pyplot, so no global figure list to leak and no display needed). Chinese
labels need a font with CJK glyphs: Noto Sans CJK comes with the project (the
`noto-cjk-sans-otc` package, SIL Open Font License), and a machine's own CJK
fonts are tried after it. Only with none of them (the package removed) is the
chart drawn in Latin letters (rep names in pinyin, the chart's own words in
English) — never as boxes of missing glyphs.
"""
from __future__ import annotations

import io
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable


from handlers.i18n import t
from storage.digest import WeeklySeries

WIDTH_PX, HEIGHT_PX, DPI = 900, 500, 100
#: Reps drawn one by one; the rest are summed into one "others" bar.
MAX_BARS = 12
MIN_SLOTS = 8
MAX_LABEL = 18
LATIN_FONT = "DejaVu Sans"  # ships with matplotlib
#: Families known to carry Chinese glyphs, best first; any other family whose
#: name looks CJK is tried after them. Each is checked for the glyphs it must draw.
CJK_FAMILIES = (
    "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN", "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei", "Microsoft YaHei", "PingFang SC", "Hiragino Sans GB", "Heiti SC", "SimHei",
    "Noto Sans CJK JP", "Source Han Sans", "Droid Sans Fallback", "AR PL UMing CN", "Arial Unicode MS",
)
_CJK_NAME = re.compile(r"CJK|Han Sans|Hei|WenQuanYi|YaHei|PingFang|Ming|Song|Kai|Fallback", re.I)
_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
_PROBE = "日报周一销售收入"
#: matplotlib's font cache and text layout are not made for concurrent use.
_RENDER_LOCK = threading.Lock()

#: Renders a catalogue key for the chart, in words its fonts can draw.
Words = Callable[..., str]


@dataclass(frozen=True)
class Fonts:
    """The font families to draw with, and every character they can draw."""

    families: tuple[str, ...]
    covered: frozenset[int]

    @property
    def cjk(self) -> bool:
        return len(self.families) > 1

    def drawable(self, text: str) -> str:
        """`text` as these fonts can draw it: Chinese in pinyin if need be, anything else undrawable left out."""
        kept = "".join(ch for ch in text if ord(ch) in self.covered or _HAN.match(ch))
        if any(ord(ch) not in self.covered for ch in kept):
            kept = "".join(ch for ch in latin_letters(kept) if ord(ch) in self.covered)
        return " ".join(kept.split()) or "?"


def latin_letters(text: str) -> str:
    """Chinese runs as capitalised pinyin, the rest untouched: 李伟 → Li Wei, 王小明 → Wang Xiaoming."""

    from pypinyin import lazy_pinyin  # loaded when first needed, not with the process (start-up)

    def name(run: re.Match[str]) -> str:
        syllables = lazy_pinyin(run.group())
        rest = "".join(syllables[1:]).capitalize()
        return f" {syllables[0].capitalize()}{' ' + rest if rest else ''} "

    return _HAN.sub(name, text).strip()


def _add_packaged_cjk_font() -> None:
    """Make the Noto Sans CJK collection the project depends on known to matplotlib (its faces
    are `Noto Sans CJK SC`, `… TC`, `… JP` …; matplotlib ≥ 3.11 reads collections)."""
    from matplotlib import font_manager

    try:
        import noto_cjk_sans_otc
    except ImportError:
        return
    path = str(noto_cjk_sans_otc.FONT_PATH)
    if not any(entry.fname == path for entry in font_manager.fontManager.ttflist):
        font_manager.fontManager.addfont(path)


@lru_cache(maxsize=2)
def available_fonts(*, cjk: bool = True) -> Fonts:
    """The Latin font plus (unless `cjk=False`) the best CJK font that really has Chinese glyphs,
    the packaged Noto Sans CJK SC first; looked up once per process."""
    from matplotlib import font_manager

    covered = _charmap(font_manager.findfont(LATIN_FONT, fallback_to_default=True))
    if not cjk:
        return Fonts((LATIN_FONT,), frozenset(covered))
    _add_packaged_cjk_font()
    by_family: dict[str, tuple[str, int]] = {}
    for entry in font_manager.fontManager.ttflist:
        by_family.setdefault(entry.name, (entry.fname, entry.index))
    candidates = [f for f in CJK_FAMILIES if f in by_family]
    candidates += sorted(f for f in by_family if _CJK_NAME.search(f) and f not in candidates)
    for family in candidates:
        glyphs = _charmap(*by_family[family])
        if "Last Resort" not in family and all(ord(ch) in glyphs for ch in _PROBE):
            return Fonts((LATIN_FONT, family), frozenset(covered | glyphs))
    return Fonts((LATIN_FONT,), frozenset(covered))


def _charmap(path: str, face: int = 0) -> set[int]:
    from matplotlib.ft2font import FT2Font

    try:
        return set(FT2Font(path, face_index=face).get_charmap())
    except (OSError, RuntimeError, ValueError):
        return set()


def weekly_chart(series: WeeklySeries, *, locale: str, period: str, fonts: Fonts | None = None) -> bytes:
    """PNG bytes (900×500): interactions per rep over the week, and revenue per week.

    `period` ("11-09 … 11-15") goes into the title. Without a CJK font the
    chart's words are English whatever `locale` says.
    """
    fonts = fonts or available_fonts()
    words = locale if fonts.cjk else "en"
    with _RENDER_LOCK:
        return _render(series, fonts, lambda key, **params: fonts.drawable(t(words, key, **params)), period)


def _render(series: WeeklySeries, fonts: Fonts, text: Words, period: str) -> bytes:
    import matplotlib

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    style = {"font.family": list(fonts.families), "font.size": 9, "axes.spines.top": False,
             "axes.spines.right": False}
    with matplotlib.rc_context(style):
        figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
        FigureCanvasAgg(figure)
        # Fixed margins (room for 18-character rep names): a layout engine would double the render time.
        activity, revenue = figure.subplots(1, 2, width_ratios=(1.1, 1), gridspec_kw=dict(
            left=0.16, right=0.98, bottom=0.16, top=0.86, wspace=0.3))
        figure.suptitle(text("digest.chart.title", period=period), fontsize=12)

        names, counts = _bars(series, fonts, text)
        activity.barh(range(len(counts)), counts, height=0.7, color="#4C72B0")
        activity.set_yticks(range(len(names)), names)
        activity.set_ylim(max(len(counts), MIN_SLOTS) - 0.5, -0.5)  # busiest on top, bars of one thickness
        activity.set_title(text("digest.chart.activity"))
        activity.set_xticks([])  # each bar carries its number; fewer ticks draw faster
        activity.spines["bottom"].set_visible(False)
        activity.tick_params(axis="y", length=0)
        for position, count in enumerate(counts):
            activity.annotate(str(count), (count, position), xytext=(3, 0), textcoords="offset points",
                              va="center", fontsize=8)

        weeks = [f"{w.week_start:%m-%d}" for w in series.revenue_by_week]
        totals = [w.total_minor / 100 for w in series.revenue_by_week]
        revenue.bar(weeks, totals, color="#55A868")
        revenue.set_title(text("digest.chart.revenue", currency=series.currency))
        revenue.yaxis.set_major_locator(MaxNLocator(4))
        revenue.yaxis.set_major_formatter(FuncFormatter(lambda value, _: _compact(value)))
        revenue.tick_params(axis="x", labelrotation=45)

        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _bars(series: WeeklySeries, fonts: Fonts, text: Words) -> tuple[list[str], list[int]]:
    """Rep labels and counts, busiest first; beyond `MAX_BARS` the rest share one bar."""
    reps = series.activity_by_rep
    shown = reps if len(reps) <= MAX_BARS else reps[: MAX_BARS - 1]
    names = [_short(fonts.drawable(rep.name)) for rep in shown]
    counts = [rep.count for rep in shown]
    if len(shown) < len(reps):
        names.append(text("digest.chart.others", count=len(reps) - len(shown)))
        counts.append(sum(rep.count for rep in reps[len(shown):]))
    if not counts:
        names, counts = [text("digest.none")], [0]
    return names, counts


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def _compact(value: float) -> str:
    """Axis numbers people read at a glance: 950, 12k, 1.5M."""
    for limit, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.0f}"
