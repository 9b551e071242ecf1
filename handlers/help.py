"""/help: short, example-first help in the member's language, and the Telegram command menu.

The list comes from the registry, so a command shows up as soon as it is
registered; its texts live in help.toml under `help.cmd.<name>` (summary,
usage, examples). A registered command missing from `GROUPS` is listed under
"more", so nothing registered is ever hidden from /help.
"""
from __future__ import annotations

import re

from handlers.context import Context
from handlers.errors import UserError
from handlers.i18n import catalogue
from handlers.messages import Reply
from handlers.registry import COMMANDS, Command, Result, command, find_command
from storage.access import RANK

GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("customers", ("add", "edit", "show", "find", "tag", "tags", "assign", "cancel")),
    ("activity", ("log", "deal", "feedback", "entry", "undo")),
    ("followups", ("remind", "reminders", "done", "snooze", "silent", "digest")),
    ("team", ("team", "invite", "join", "link", "role", "settings", "me", "start", "help")),
    ("data", ("import", "export", "dupes", "merge", "delete", "restore", "forget", "history")),
)
RELATED: dict[str, tuple[str, ...]] = {
    "add": ("edit", "show", "import"), "edit": ("show", "assign", "tag"), "show": ("find", "history", "log"),
    "find": ("show", "tags", "silent"), "tag": ("tags", "find"), "tags": ("tag", "find"),
    "assign": ("team", "show"), "cancel": ("add",), "log": ("remind", "show", "history"),
    "deal": ("show", "feedback"), "feedback": ("show", "deal"), "remind": ("reminders", "done", "snooze"),
    "reminders": ("done", "snooze", "remind"), "done": ("reminders",), "snooze": ("reminders",),
    "silent": ("log", "remind", "settings"), "digest": ("silent", "me"), "team": ("invite", "role"),
    "invite": ("join", "role", "team"), "join": ("start", "link"), "link": ("me", "team"),
    "role": ("team", "invite"), "settings": ("me",), "me": ("settings", "digest"), "start": ("help", "join"),
    "help": ("start",), "import": ("export", "dupes"), "export": ("import",), "dupes": ("merge",),
    "merge": ("dupes", "history"), "delete": ("restore", "forget"), "restore": ("delete",),
    "forget": ("delete",), "history": ("show", "undo"), "entry": ("show", "undo", "history"),
    "undo": ("entry", "history"),
}
_MENU_NAME = re.compile(r"[a-z0-9_]{1,32}")  # what Telegram accepts in setMyCommands
MENU_DESCRIPTION = 60


def _text(locale: str, key: str) -> str:
    return catalogue(locale).get(key) or catalogue("en").get(key, "")


def grouped() -> list[tuple[str, list[Command]]]:
    """The registered commands by group, in help order; unknown ones under "more"."""
    listed = {name for _, names in GROUPS for name in names}
    groups = [(group, [COMMANDS[n] for n in names if n in COMMANDS]) for group, names in GROUPS]
    groups.append(("more", [entry for name, entry in sorted(COMMANDS.items()) if name not in listed]))
    return [(group, entries) for group, entries in groups if entries]


def command_menu(locale: str) -> list[tuple[str, str]]:
    """(command, short description) for the Telegram command menu: menu commands with latin names."""
    return [
        (entry.name, (_text(locale, f"help.cmd.{entry.name}.summary") or entry.name)[:MENU_DESCRIPTION])
        for _, entries in grouped() for entry in entries
        if entry.menu and _MENU_NAME.fullmatch(entry.name)
    ]


@command("help", needs_workspace=False, aliases=("帮助", "?"))
async def help_(ctx: Context, args: str) -> Result:
    word = args.split()[0].lstrip("/").split("@")[0] if args.split() else ""
    if not word:
        return _overview(ctx)
    entry = find_command(word)
    if entry is None:
        raise UserError("error.help_unknown", command=word[:40], commands=" ".join(f"/{name}" for name in sorted(COMMANDS)))
    return _details(ctx, entry)


def _allowed(ctx: Context, entry: Command) -> bool:
    return ctx.member is None or RANK[ctx.member.role] >= RANK[entry.role]


def _overview(ctx: Context) -> Reply:
    lines = [ctx.t("help.intro")]
    if ctx.request.platform == "slack":
        lines.append(ctx.t("help.slack"))
    for group, entries in grouped():
        shown = [entry for entry in entries if _allowed(ctx, entry)]
        if shown:
            lines.append("")
            lines.append(ctx.t(f"help.group.{group}"))
            lines.extend(ctx.t("help.line", command=e.name, summary=_text(ctx.locale, f"help.cmd.{e.name}.summary"))
                         for e in shown)
    return Reply(title=ctx.t("help.title"), text="\n".join(lines))


def _details(ctx: Context, entry: Command) -> Reply:
    key = f"help.cmd.{entry.name}"
    lines = [ctx.t("help.usage", usage=_text(ctx.locale, f"{key}.usage") or f"/{entry.name}")]
    examples = _text(ctx.locale, f"{key}.examples")
    if examples:
        lines += ["", ctx.t("help.examples"), examples]
    lines.append("")
    if entry.aliases:
        lines.append(ctx.t("help.aliases", aliases=" ".join(f"/{alias}" for alias in entry.aliases)))
    related = [f"/{name}" for name in RELATED.get(entry.name, ()) if name in COMMANDS]
    if related:
        lines.append(ctx.t("help.related", commands=" ".join(related)))
    if entry.role != "rep":
        key = "help.needs_admin" if entry.role == "admin" else "help.needs_role"  # no role above admin
        lines.append(ctx.t(key, role=ctx.t(f"role.{entry.role}")))
    if ctx.request.platform == "slack":
        lines.append(ctx.t("help.slack"))
    summary = _text(ctx.locale, f"{key}.summary")
    return Reply(title=f"/{entry.name} — {summary}" if summary else f"/{entry.name}", text="\n".join(lines).strip())
