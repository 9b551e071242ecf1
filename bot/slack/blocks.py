"""Block Kit for Slack: replies as messages, forms as modals, "my day" as the App Home, within Slack's limits.

Reply text is plain. It goes out as mrkdwn with `&`, `<` and `>` escaped and
`verbatim` set, so nothing a user typed can become a mention (`<!channel>`,
`<@U1>`), a channel link or a URL; only titles (header blocks) and field labels
are bold. The plain `text` fallback (notifications) is escaped the same way.

Replies name commands as `/remind …`; in Slack that is Slack's own /remind (so are
/invite, /join, /me and /feedback), and the other names don't exist there. Every
text shown names them as a Slack user types ours: `/crm remind …`.
"""
from __future__ import annotations

import importlib
import itertools
import json
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Iterable, Iterator

from handlers.i18n import t
from handlers.messages import Button, Field, Form, FormField, Reply
from handlers.registry import COMMANDS

Block = dict[str, Any]

MESSAGE_BLOCKS = 50
SURFACE_BLOCKS = 100  # modals and the Home tab
HEADER_CHARS = 150
SECTION_CHARS = 3000
FIELD_CHARS = 2000
FIELDS_PER_SECTION = 10
BUTTONS_PER_ACTIONS = 25
BUTTON_CHARS = 75
MODAL_TITLE_CHARS = 24
LABEL_CHARS = 2000
OPTION_CHARS = 75
OPTION_VALUE_CHARS = 150
OPTIONS_PER_SELECT = 100
METADATA_CHARS = 3000
FALLBACK_CHARS = 3000
#: Every button's action_id starts with this; its `value` is the neutral `Button.action`.
ACTION_PREFIX = "crm."
#: A modal's input blocks are `field.<key>`; their one element is `value`.
FIELD_BLOCK = "field."
FIELD_ELEMENT = "value"
FORM_CALLBACK = "crm_form"


def escape(text: str) -> str:
    """Slack's three control characters as entities: user text stays text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escaped_pieces(text: str, limit: int) -> Iterator[str]:
    """`text` escaped, cut into pieces of at most `limit` characters without splitting an entity."""
    piece, size = [], 0
    for char in text:
        escaped = escape(char)
        if size + len(escaped) > limit:
            yield "".join(piece)
            piece, size = [], 0
        piece.append(escaped)
        size += len(escaped)
    yield "".join(piece)


def escaped_clip(text: str, limit: int) -> str:
    """`text` escaped and cut to at most `limit` characters (with an ellipsis if cut)."""
    if len(escape(text)) <= limit:
        return escape(text)
    return next(_escaped_pieces(text, limit - 1)) + "…"


def plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text.strip() or "·", limit), "emoji": True}


def mrkdwn(escaped: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": escaped, "verbatim": True}


def context(text: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(escaped_clip(text, SECTION_CHARS))]}


@lru_cache(maxsize=1)
def _command_names() -> re.Pattern[str]:
    importlib.import_module("handlers.commands")  # the command families register on import
    words = sorted({w for entry in COMMANDS.values() for w in (entry.name, *entry.aliases)}, key=len, reverse=True)
    return re.compile(rf"(?<![\w/.:@-])/({'|'.join(map(re.escape, words))})(?![\w@-])")


def as_typed(text: str) -> str:
    """`/remind #12 friday` as a Slack user types it: `/crm remind #12 friday`."""
    return _command_names().sub(r"/crm \1", text)


def for_slack(reply: Reply) -> Reply:
    """The reply with every command named as typed in Slack."""
    return replace(reply, title=as_typed(reply.title), text=as_typed(reply.text), notice=as_typed(reply.notice),
                   items=[as_typed(item) for item in reply.items],
                   fields=[Field(f.label, as_typed(f.value)) for f in reply.fields])


def fallback(reply: Reply) -> str:
    """The plain `text` of a message with blocks: what notifications and old clients show."""
    reply = for_slack(reply)
    return escaped_clip(reply.plain_text() or reply.notice or "·", FALLBACK_CHARS)


def has_content(reply: Reply) -> bool:
    return bool(reply.title or reply.text or reply.fields or reply.items or reply.buttons)


# --- messages -----------------------------------------------------------------------------------

class ActionIds:
    """Unique action_ids within one message or view (Slack refuses duplicates)."""

    def __init__(self, start: int = 0) -> None:
        self._numbers = itertools.count(start)

    def next(self) -> str:
        return f"{ACTION_PREFIX}{next(self._numbers)}"


@dataclass
class _Piece:
    block: Block
    entries: int  # list entries it shows, counted in "…and N more" when dropped


def _sections(lines: Iterable[str], prefix: str = "") -> list[_Piece]:
    """Lines packed into mrkdwn sections of at most SECTION_CHARS (a longer line is cut in pieces)."""
    pieces: list[_Piece] = []
    chunk: list[str] = []
    size = entries = 0

    def close() -> None:
        nonlocal chunk, size, entries
        if any(part.strip() for part in chunk):
            pieces.append(_Piece({"type": "section", "text": mrkdwn("\n".join(chunk))}, entries))
        chunk, size, entries = [], 0, 0

    for line in lines:
        for part in _escaped_pieces(prefix + line, SECTION_CHARS):
            if size + len(part) + 1 > SECTION_CHARS:
                close()
            chunk.append(part)
            size += len(part) + 1
        entries += 1
    close()
    return pieces


def _field_sections(reply: Reply) -> list[_Piece]:
    texts = [f"*{escaped_clip(f.label, 200)}*\n{escaped_clip(f.value, FIELD_CHARS - 210)}" for f in reply.fields]
    return [
        _Piece({"type": "section", "fields": [mrkdwn(text) for text in texts[i:i + FIELDS_PER_SECTION]]},
               len(texts[i:i + FIELDS_PER_SECTION]))
        for i in range(0, len(texts), FIELDS_PER_SECTION)
    ]


def button(b: Button, ids: ActionIds) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "button", "text": plain(b.label, BUTTON_CHARS), "value": b.action,
                               "action_id": ids.next()}
    if b.style in ("primary", "danger"):
        element["style"] = b.style
    return element


def _actions(rows: list[list[Button]], ids: ActionIds) -> list[_Piece]:
    pieces = []
    for row in rows:
        for i in range(0, len(row), BUTTONS_PER_ACTIONS):
            elements = [button(b, ids) for b in row[i:i + BUTTONS_PER_ACTIONS]]
            pieces.append(_Piece({"type": "actions", "elements": elements}, len(elements)))
    return pieces


def _packed(pieces: list[_Piece]) -> list[_Piece]:
    """The same buttons in as few actions blocks as Slack allows."""
    elements = [e for piece in pieces for e in piece.block["elements"]]
    return [
        _Piece({"type": "actions", "elements": elements[i:i + BUTTONS_PER_ACTIONS]},
               len(elements[i:i + BUTTONS_PER_ACTIONS]))
        for i in range(0, len(elements), BUTTONS_PER_ACTIONS)
    ]


def message_blocks(reply: Reply, locale: str, ids: ActionIds | None = None, *,
                   limit: int = MESSAGE_BLOCKS) -> list[Block]:
    """Header, text, fields, list, buttons; over `limit`, buttons are packed, then the end is cut with "…and N more"."""
    ids = ids or ActionIds()
    reply = for_slack(reply)
    head: list[_Piece] = []
    if reply.title:
        head.append(_Piece({"type": "header", "text": plain(reply.title, HEADER_CHARS)}, 0))
    head += _sections(reply.text.splitlines() if reply.text.strip() else [])
    head += _field_sections(reply)
    items = _sections(reply.items, "• ")
    actions = _actions(reply.buttons, ids)
    if len(head) + len(items) + len(actions) > limit:
        actions = _packed(actions)
    if len(head) + len(items) + len(actions) <= limit:
        return [p.block for p in head + items + actions]
    room = limit - 1  # one block for "…and N more"
    kept_head = head[:room]
    kept_actions = actions[: max(0, room - len(kept_head))]
    kept_items = items[: max(0, room - len(kept_head) - len(kept_actions))]
    dropped = sum(p.entries for p in head[len(kept_head):] + items[len(kept_items):] + actions[len(kept_actions):])
    more = context(t(locale, "slack.more", count=dropped))
    return [p.block for p in kept_head + kept_items] + [more] + [p.block for p in kept_actions]


# --- several replies in one message, and the App Home -------------------------------------------------

#: The blocks of reply <n> of a message that shows several are named `r<n>.<i>`, so a button press can
#: redraw that part alone.
PART = "r"


def _part_of(block_id: object) -> str | None:
    head, dot, _ = str(block_id or "").partition(".")
    return head if dot and head[:1] == PART and _ascii_number(head[1:]) else None


def _ascii_number(text: str) -> bool:
    """Digits `int()` reads (`str.isdigit` also says yes to '²', which `int()` refuses)."""
    return text.isascii() and text.isdigit()


def _named(blocks: list[Block], part: str) -> list[Block]:
    return [{**block, "block_id": f"{part}.{i}"} for i, block in enumerate(blocks)]


def combined_blocks(replies: list[Reply], locale: str, *, limit: int, more: str) -> list[Block]:
    """Each reply in turn, a divider before each titled one, each part named; `more` ends what doesn't fit."""
    ids = ActionIds()
    blocks: list[Block] = []
    for number, reply in enumerate(replies):
        if not has_content(reply):
            continue
        rendered = ([{"type": "divider"}] if reply.title and blocks else []) + message_blocks(
            reply, locale, ids, limit=limit - 1)
        if len(blocks) + len(rendered) > limit - 1:
            blocks.append(context(more))
            break
        blocks += _named(rendered, f"{PART}{number}")
    return blocks


def message_of_parts(replies: list[Reply], locale: str) -> list[Block]:
    """Several replies as one message (a command that answers in parts posts once, not once per part)."""
    return combined_blocks(replies, locale, limit=MESSAGE_BLOCKS, more=t(locale, "slack.parts_more"))


def spliced(message: list[Block], pressed_block: str | None, reply: Reply, locale: str) -> list[Block] | None:
    """The message with only the part whose button was pressed redrawn as `reply`; None when the message
    isn't one of parts (or the result wouldn't fit), and the whole message is to be replaced."""
    part = _part_of(pressed_block)
    where = [i for i, block in enumerate(message) if _part_of(block.get("block_id")) == part]
    if part is None or not where:
        return None
    taken = [int(e["action_id"].removeprefix(ACTION_PREFIX)) for block in message for e in block.get("elements", [])
             if _ascii_number(str(e.get("action_id", "")).removeprefix(ACTION_PREFIX))]
    ids = ActionIds(start=max(taken, default=-1) + 1)
    divider = [{"type": "divider"}] if message[where[0]].get("type") == "divider" else []
    fresh = _named(divider + message_blocks(reply, locale, ids), part)
    blocks = message[:where[0]] + fresh + message[where[-1] + 1:]
    return blocks if len(blocks) <= MESSAGE_BLOCKS else None


def home_view(replies: list[Reply], locale: str, status: str = "") -> dict[str, Any]:
    """The Home tab: what happened on top, then each reply in turn, within 100 blocks."""
    head: list[Block] = [context(as_typed(status))] if status else []
    blocks = combined_blocks(replies, locale, limit=SURFACE_BLOCKS - len(head), more=t(locale, "slack.home_more"))
    if head and blocks and blocks[0].get("type") == "header":
        head.append({"type": "divider"})
    return {"type": "home", "blocks": head + blocks}


# --- forms as modals ----------------------------------------------------------------------------------

def _option(value: str, label: str) -> dict[str, Any]:
    return {"text": plain(label, OPTION_CHARS), "value": value[:OPTION_VALUE_CHARS]}


def _input(field: FormField) -> Block:
    element: dict[str, Any]
    if field.options:
        options = [_option(value, label) for value, label in field.options[:OPTIONS_PER_SELECT]]
        element = {"type": "static_select", "action_id": FIELD_ELEMENT, "options": options}
        initial = next((o for o in options if o["value"] == field.initial), None)
        if initial is not None:
            element["initial_option"] = initial
    else:
        element = {"type": "plain_text_input", "action_id": FIELD_ELEMENT, "multiline": field.multiline}
        if field.initial:
            element["initial_value"] = field.initial
    block: Block = {"type": "input", "block_id": f"{FIELD_BLOCK}{field.key}", "optional": not field.required,
                    "label": plain(field.label, LABEL_CHARS), "element": element}
    if field.hint:
        block["hint"] = plain(field.hint, LABEL_CHARS)
    return block


def modal(form: Form, metadata: dict[str, Any], close_label: str) -> dict[str, Any]:
    """The form as a modal; `metadata` (where it was opened, the form's context) comes back on submit."""
    packed = json.dumps({**metadata, "form": form.name, "context": form.context}, ensure_ascii=False)
    if len(packed) > METADATA_CHARS:
        raise ValueError(f"form {form.name!r}: private_metadata over {METADATA_CHARS} characters")
    return {
        "type": "modal",
        "callback_id": FORM_CALLBACK,
        "title": plain(form.title, MODAL_TITLE_CHARS),
        "submit": plain(form.submit_label or "OK", MODAL_TITLE_CHARS),
        "close": plain(close_label, MODAL_TITLE_CHARS),
        "private_metadata": packed,
        "blocks": [_input(field) for field in form.fields[:SURFACE_BLOCKS]],
    }


def submitted_values(view: dict[str, Any]) -> dict[str, str]:
    """Field key → the text typed or the option picked ("" when left empty)."""
    values: dict[str, str] = {}
    for block_id, elements in (view.get("state") or {}).get("values", {}).items():
        if not block_id.startswith(FIELD_BLOCK):
            continue
        element = elements.get(FIELD_ELEMENT) or {}
        picked = element.get("selected_option") or {}
        values[block_id.removeprefix(FIELD_BLOCK)] = element.get("value") or picked.get("value") or ""
    return values


def field_errors(errors: dict[str, str], view: dict[str, Any]) -> dict[str, str]:
    """`response_action: errors` for a modal: each message beside its field (unknown keys: the first field)."""
    blocks = [b["block_id"] for b in view.get("blocks", []) if b.get("type") == "input" and "block_id" in b]
    shown: dict[str, str] = {}
    for key, message in errors.items():
        block_id = f"{FIELD_BLOCK}{key}"
        target = block_id if block_id in blocks else (blocks[0] if blocks else block_id)
        message = as_typed(message)
        shown[target] = clip(f"{shown[target]} {message}" if target in shown else message, LABEL_CHARS)
    return shown
