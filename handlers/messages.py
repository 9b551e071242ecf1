"""The neutral vocabulary between platform adapters and handlers.

An adapter turns a platform update into a `Request` and renders the `Reply`s it
gets back; handlers never see a platform object. Text in a `Reply` is plain:
adapters escape it for their markup, and only `title` and field labels are
rendered bold, so user input can never inject markup.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Literal

ButtonStyle = Literal["primary", "danger"] | None


@dataclass(frozen=True)
class Attachment:
    """A file coming in (CSV on /import) or going out (export CSV, digest chart)."""

    name: str
    content: bytes
    mime: str = "application/octet-stream"


@dataclass(frozen=True)
class Button:
    """A button; `action` is an opaque payload of at most 64 bytes (Telegram's limit).

    Whatever the payload refers to lives in the database, so a button keeps
    working after a restart.
    """

    label: str
    action: str
    style: ButtonStyle = None

    def __post_init__(self) -> None:
        if len(self.action.encode()) > 64:
            raise ValueError(f"button action over 64 bytes: {self.action!r}")


@dataclass(frozen=True)
class Field:
    label: str
    value: str


def field_separator(label: str) -> str:
    """What goes between a label and its value: `：` after a Chinese label (`公司：华为`), `: `
    after any other (`Company: Acme`), so a card keeps one kind of punctuation per language."""
    last = label.rstrip()[-1:]
    wide = bool(last) and (unicodedata.east_asian_width(last) in ("W", "F"))
    return "：" if wide else ": "


@dataclass(frozen=True)
class FormField:
    """One question of a form: a Slack modal input, or one step of a guided flow."""

    key: str
    label: str
    required: bool = False
    multiline: bool = False
    options: tuple[tuple[str, str], ...] = ()  # (value, label) for a select
    hint: str = ""
    initial: str = ""


@dataclass(frozen=True)
class Form:
    """Input a handler wants as a form.

    Platforms with modals (Slack) render it as one; the others walk through the
    fields one at a time (the guided flow). Either way the values come back as a
    `FormSubmission` to the form's submit handler, registered under `name`.
    """

    name: str
    title: str
    fields: tuple[FormField, ...]
    submit_label: str = ""
    context: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FormSubmission:
    name: str
    values: dict[str, str]
    context: dict[str, str] = field(default_factory=dict)


@dataclass
class Reply:
    """What a handler answers with; adapters render every part they support.

    - `text` is plain text, may hold newlines.
    - `title` is shown bold (Slack: a header block), `fields` as label/value pairs,
      `items` as a list, `buttons` as rows of buttons (console: numbered choices).
    - `file`/`image` attach a document or a picture.
    - `edit` asks to replace the message the user acted on (a button press) or
      the previous progress message, rather than sending a new one.
    - `private` asks that only the requester see it (Slack ephemeral); adapters
      without that notion ignore it.
    - `form` asks the adapter to open a form (Slack) – handlers only return one
      when `Request.supports_forms` is true.
    - `notice` is a short toast for a button press (Telegram answerCallbackQuery).
    """

    text: str = ""
    title: str = ""
    fields: list[Field] = field(default_factory=list)
    items: list[str] = field(default_factory=list)
    buttons: list[list[Button]] = field(default_factory=list)
    file: Attachment | None = None
    image: Attachment | None = None
    edit: bool = False
    private: bool = False
    form: Form | None = None
    notice: str = ""
    #: Errors per form field (Slack `response_action: errors`); set by form handlers.
    form_errors: dict[str, str] = field(default_factory=dict)

    def plain_text(self) -> str:
        """Everything readable as one plain string (console, logs, tests)."""
        parts: list[str] = []
        if self.title:
            parts.append(self.title)
        if self.text:
            parts.append(self.text)
        parts.extend(f"{f.label}{field_separator(f.label)}{f.value}" for f in self.fields)
        parts.extend(f"• {item}" for item in self.items)
        for key, message in self.form_errors.items():
            parts.append(f"{key}{field_separator(key)}{message}")
        return "\n".join(parts)

    def all_buttons(self) -> list[Button]:
        return [b for row in self.buttons for b in row]


#: Called by long handlers (imports) to show progress; the adapter sends the
#: first reply and edits that same message for the following ones.
ProgressSink = Callable[[Reply], Awaitable[None]]


@dataclass
class Request:
    """One thing a person did in a chat: a command, a plain message, a button, a form.

    `space` identifies where the workspace comes from: the Slack team id, the
    Telegram group id, "console"; `None` for a Telegram private chat, where the
    workspace is the member's own. `space_autocreate` says whether first use
    creates the workspace (Slack, console) or waits for /start (Telegram groups).
    """

    platform: str
    user_id: str
    chat_id: str
    user_name: str = ""
    space: str | None = None
    space_name: str = ""
    space_autocreate: bool = True
    is_private: bool = False
    #: False for plain chatter in a group: only commands and guided answers get a reply.
    addressed: bool = True
    language: str | None = None
    timezone: str | None = None
    text: str = ""
    action: str | None = None
    submission: FormSubmission | None = None
    file: Attachment | None = None
    update_key: str | None = None
    #: The adapter calls `Core.answered(update_key)` as the replies leave, and sends them only when that
    #: claim is its own; until then the core keeps them, and a redelivery of the update (after a crash)
    #: gets them again (Telegram).
    reports_answers: bool = False
    supports_forms: bool = False
    #: The platform can show a reply to the asker alone in a shared channel, and put its files in
    #: their direct messages (Slack: ephemeral messages). Telegram groups cannot.
    answers_privately: bool = False
    #: Plain messages in this chat reach the bot, so a guided flow's questions can be answered
    #: (False in a Slack channel, where only mentions arrive: a form is opened from a button instead).
    takes_answers: bool = True
    progress: ProgressSink | None = None
    #: Where a direct message to this user goes on this platform (Telegram private
    #: chat id, Slack DM channel or user id); recorded for reminders and digests.
    dm_chat_id: str | None = None
