"""Long lists in pages with Prev/Next buttons (Telegram's 4096-character limit, Slack's blocks).

A pageable command takes a `page` keyword. Its first reply stores the command
and its arguments under a token; the buttons carry only `pg:<token>:<page>`,
and pressing one runs the command again for that page and edits the message.
"""
from __future__ import annotations

from handlers.context import Context
from handlers.errors import UserError
from handlers.messages import Button
from handlers.registry import COMMANDS, Result, action, button_number, payload

PAGE_SIZE = 10


async def page_buttons(ctx: Context, command: str, args: str, page: int, total: int) -> list[list[Button]]:
    """Prev/Next buttons for `page` of a list of `total` rows (none if it fits on one)."""
    pages = -(-total // PAGE_SIZE)
    if pages <= 1:
        return []
    token = await ctx.remember("page", {"command": command, "args": args})
    row = []
    if page > 0:
        row.append(Button(ctx.t("page.prev"), payload("pg", token, page - 1)))
    row.append(Button(ctx.t("page.of", page=page + 1, pages=pages), payload("pg", token, page)))
    if page + 1 < pages:
        row.append(Button(ctx.t("page.next"), payload("pg", token, page + 1)))
    return [row]


@action("pg")
async def turn(ctx: Context, args: list[str]) -> Result:
    token, page = (args + ["", ""])[:2]
    stored = await ctx.recall(token, "page")
    entry = COMMANDS.get(stored["command"])
    number = button_number(page)
    if entry is None or number is None:
        raise UserError("error.choice_expired")
    ctx.scope.require_role(entry.role, entry.name)
    parsed = entry.parse(ctx, stored["args"]) if entry.parse else stored["args"]
    result = await entry.func(ctx, parsed, page=number)
    replies = result if isinstance(result, list) else [result]
    for reply in replies:
        reply.edit = True
    return replies
