"""Where commands, button actions and form submissions register themselves.

A command is one function in the module of its subject, decorated with
`@command(...)`; its argument parsing is the `parse` function declared beside
it. Button payloads are `<action>:<arg>:<arg>…`; the part before the first
colon picks the `@action` handler. Nothing here knows a platform.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from handlers.messages import FormSubmission, Reply

if TYPE_CHECKING:
    from handlers.context import Context

Result = Reply | list[Reply]
Parser = Callable[["Context", str], Any]


@dataclass(frozen=True)
class Command:
    name: str
    func: Callable[..., Awaitable[Result]]
    parse: Parser | None
    role: str
    aliases: tuple[str, ...]
    needs_workspace: bool
    menu: bool
    #: The command reads an attached file (`/import`): adapters whose files come as a typed path
    #: (the console) attach the one its last argument names.
    takes_file: bool = False
    #: Words that run the command with a subcommand in front of what follows (`/移除 X` is `/team remove X`).
    shortcuts: tuple[tuple[str, str], ...] = ()

    def arguments(self, word: str, args: str) -> str:
        """The arguments of the command typed as `word`: a shortcut's subcommand comes first."""
        prefix = dict(self.shortcuts).get(word.lower())
        return f"{prefix} {args}".strip() if prefix else args


@dataclass(frozen=True)
class Action:
    name: str
    func: Callable[["Context", list[str]], Awaitable[Result]]
    role: str


COMMANDS: dict[str, Command] = {}
ACTIONS: dict[str, Action] = {}
FORMS: dict[str, Callable[["Context", FormSubmission], Awaitable[Result]]] = {}
#: Per form, what is wrong with one answer (None: nothing), asked as each is typed in a guided flow.
FieldCheck = Callable[["Context", str, str], Awaitable[str | None]]
FORM_CHECKS: dict[str, FieldCheck] = {}
_BY_ALIAS: dict[str, Command] = {}


def command(
    name: str,
    *,
    parse: Parser | None = None,
    role: str = "rep",
    aliases: tuple[str, ...] = (),
    needs_workspace: bool = True,
    menu: bool = True,
    shortcuts: tuple[tuple[str, str], ...] = (),
    takes_file: bool = False,
) -> Callable:
    """Register a command. With `parse`, the function gets `(ctx, parse(ctx, args))`,
    otherwise `(ctx, args)` with the raw argument text."""

    def register(func: Callable[..., Awaitable[Result]]) -> Callable[..., Awaitable[Result]]:
        entry = Command(name, func, parse, role, aliases, needs_workspace, menu, takes_file, shortcuts)
        for key in (name, *aliases, *(word for word, _ in shortcuts)):
            if key in _BY_ALIAS:
                raise ValueError(f"command {key!r} registered twice")
            _BY_ALIAS[key] = entry
        COMMANDS[name] = entry
        return func

    return register


def action(name: str, *, role: str = "rep") -> Callable:
    """Register the handler of button payloads starting with `name:`."""

    def register(func: Callable[["Context", list[str]], Awaitable[Result]]) -> Callable:
        if name in ACTIONS or ":" in name:
            raise ValueError(f"bad or duplicate action name {name!r}")
        ACTIONS[name] = Action(name, func, role)
        return func

    return register


def form(name: str, *, check: FieldCheck | None = None) -> Callable:
    """Register the handler that receives a submitted form (Slack modal or guided flow), and
    optionally `check(ctx, key, value)`, so a guided flow can refuse a bad answer at once
    rather than after the last question."""

    def register(func: Callable[["Context", FormSubmission], Awaitable[Result]]) -> Callable:
        if name in FORMS:
            raise ValueError(f"form {name!r} registered twice")
        FORMS[name] = func
        if check is not None:
            FORM_CHECKS[name] = check
        return func

    return register


def find_command(word: str) -> Command | None:
    return _BY_ALIAS.get(word.lower())


def payload(name: str, *args: object) -> str:
    """Build a button payload for the action `name` (checked ≤ 64 bytes by `Button`)."""
    return ":".join([name, *map(str, args)])


_BUTTON_NUMBER = re.compile(r"[0-9]{1,9}")  # ASCII only ('²' is a digit to str.isdigit), fits any id column


def button_number(arg: str) -> int | None:
    """A number from a button payload (an id, an index, a page), or None for anything else."""
    return int(arg) if _BUTTON_NUMBER.fullmatch(arg) else None
