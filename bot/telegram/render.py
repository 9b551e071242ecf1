"""A neutral `Reply` as Telegram messages: escaped HTML parts, an inline keyboard, a caption.

Every piece of text is escaped; the only markup is ours (the title and field
labels in bold), so nothing a user typed can break or inject formatting.
Telegram refuses messages over 4096 characters of text as shown (after the
markup is parsed: `&lt;` is one character), so long replies are split on line
boundaries (a single overlong line is cut, never inside an escape), and the
keyboard goes on the last part.
"""
from __future__ import annotations

from dataclasses import dataclass
import re
from html import escape, unescape

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from handlers.messages import Reply, field_separator

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_ALERT = 200  # answerCallbackQuery's text
#: What a reply with buttons but no words shows (Telegram refuses an empty message).
EMPTY = "…"
_TAG = re.compile(r"<[^>]*>")  # our own tags only: user text is escaped


@dataclass(frozen=True)
class Line:
    """One rendered line: markup we made (`prefix`) followed by user text (`raw`, escaped when rendered)."""

    prefix: str
    raw: str

    @property
    def html(self) -> str:
        return self.prefix + escape(self.raw)

    @property
    def shown(self) -> int:
        """How long the line is on screen, as Telegram counts it."""
        return shown_size(self.prefix) + size(self.raw)


def size(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def shown_size(html: str) -> int:
    """The length Telegram checks against its limits: the text once our markup is parsed."""
    return size(unescape(_TAG.sub("", html)))


def lines(reply: Reply, *, with_notice: bool = False) -> list[Line]:
    found: list[Line] = []
    if reply.title:
        found.append(Line(f"<b>{escape(reply.title)}</b>", ""))
    found += [Line("", line) for line in reply.text.split("\n")] if reply.text else []
    found += [Line(f"<b>{escape(f.label)}</b>{field_separator(f.label)}", f.value) for f in reply.fields]
    found += [Line("• ", item) for item in reply.items]
    found += [Line(f"{escape(key)}: ", message) for key, message in reply.form_errors.items()]
    if with_notice and reply.notice and not found:
        found.append(Line("", reply.notice))
    return found


def parts(reply: Reply, limit: int = MAX_TEXT, *, with_notice: bool = False) -> list[str]:
    """The reply's text as HTML messages of at most `limit` characters each."""
    chunks: list[str] = []
    current: list[str] = []
    used = 0
    for line in lines(reply, with_notice=with_notice):
        for piece, shown in _fit(line, limit):
            extra = shown + (1 if current else 0)
            if current and used + extra > limit:
                chunks.append("\n".join(current))
                current, used, extra = [], 0, shown
            current.append(piece)
            used += extra
    if current:
        chunks.append("\n".join(current))
    return [chunk for chunk in chunks if chunk.strip()] or ([EMPTY] if reply.buttons else [])


def _fit(line: Line, limit: int) -> list[tuple[str, int]]:
    """A line cut into (html, shown size) pieces that each fit `limit` (the prefix stays on the first)."""
    if line.shown <= limit:
        return [(line.html, line.shown)]
    pieces, current, used = [], line.prefix, shown_size(line.prefix)
    for char in line.raw:
        if used + size(char) > limit:
            pieces.append((current, used))
            current, used = "", 0
        current += escape(char)
        used += size(char)
    pieces.append((current, used))
    return pieces


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    if not reply.buttons:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(button.label, callback_data=button.action) for button in row] for row in reply.buttons]
    )


def alert(replies: list[Reply]) -> str | None:
    """Replies that fit a button-press alert (only the presser sees it): private, plain text, short."""
    if not replies or not all(r.private and not (r.buttons or r.file or r.image or r.edit or r.form) for r in replies):
        return None
    text = "\n".join(r.plain_text() for r in replies)
    return text if 0 < len(text) <= MAX_ALERT else None
