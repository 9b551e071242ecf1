"""/import and /export: the customer book as CSV (SPEC §6).

`/import` reads the CSV attached to the command (Telegram document, Slack
file, or in the console a local path as the last word); `/export` (managers)
answers with a CSV file. The reading, merging and writing live in
storage.transfer; here are the limits of a chat upload, the wording, and the
progress message. The texts are built per locale, not per request, so the
command line (`crm-bot import/export`) says the same things.
"""
from __future__ import annotations

from typing import Awaitable, Callable

from handlers.context import Context
from handlers.errors import UserError
from handlers.i18n import LOCALES, catalogue, t
from handlers.messages import Attachment, Reply
from handlers.registry import Result, command
from handlers.tags import auto_tag_names
from handlers.team import for_the_asker
from storage import transfer
from storage.scoring import STAGES
from storage.transfer import CsvProblem, ImportResult, Rejected, Table

MAX_BYTES = 10 * 1024 * 1024
MAX_ROWS = 50_000
#: Rejected rows and possible duplicates listed before "and N more".
LISTED = 20
#: Smaller imports finish too fast for a progress message to help.
PROGRESS_MIN_ROWS = 1_000
PROGRESS_STEPS = 10
_LABEL_KEYS = {"number": "export.column.number", "tags": "card.tags", "stage": "card.stage", "tier": "card.tier",
               "ltv": "card.ltv", "last_contact": "card.last_contact", "next_followup": "card.next_followup"}


# --- texts shared with the command line ----------------------------------------------

def export_headers(locale: str) -> dict[str, str]:
    """Column → header label of an export in `locale`."""
    return {column: t(locale, _LABEL_KEYS.get(column, f"field.{column}")) for column in transfer.EXPORT_COLUMNS}


def import_labels() -> dict[str, str]:
    """Header label → column, for the headers an export writes in any language: an export re-imports."""
    return {label: column for locale in LOCALES for column, label in export_headers(locale).items()}


def stage_names(locale: str) -> dict[str, str]:
    return {stage: t(locale, f"stage.{stage}") for stage in STAGES}


def read_csv(content: bytes, locale: str, *, max_rows: int | None = None) -> Table:
    """The file's rows; `UserError` (in `locale`'s terms) when it cannot be imported at all."""
    try:
        table = transfer.read_table(content, import_labels())
    except CsvProblem as problem:
        raise UserError(f"import.error.{problem.reason}", **problem.params) from None
    if not table.rows:
        raise UserError("import.error.no_rows")
    if max_rows is not None and len(table.rows) > max_rows:
        raise UserError("import.error.too_many_rows", rows=f"{len(table.rows):,}", limit=f"{max_rows:,}")
    return table


def summary(locale: str, result: ImportResult) -> str:
    """What an import did, in plain lines: counts, rows left out, odd columns, possible duplicates."""
    def say(key: str, **params: object) -> str:
        return t(locale, key, **params)

    lines = [say("import.counts", rows=f"{result.rows:,}", added=f"{result.added:,}",
                 merged=f"{result.merged:,}", rejected=f"{len(result.rejected):,}")]
    if result.rejected:
        lines += ["", say("import.rejected_title")]
        lines += [f"• {rejection_text(locale, r)}" for r in result.rejected[:LISTED]]
        lines += _more(locale, len(result.rejected))
        lines.append(say("import.rejected_hint"))
    if result.unknown_columns:
        lines += ["", say("import.unknown_columns", columns=say("common.list_sep").join(result.unknown_columns))]
    if result.ignored_tags:
        lines += ["", say("import.ignored_tags", tags=say("common.list_sep").join(result.ignored_tags))]
    if result.possible_duplicates:
        lines += ["", say("import.duplicates_title")]
        lines += [f"• #{d.number} {d.name} ~ #{d.of_number} {d.of_name}" for d in result.possible_duplicates[:LISTED]]
        lines += _more(locale, len(result.possible_duplicates))
    return "\n".join(lines)


def _more(locale: str, total: int) -> list[str]:
    return [t(locale, "import.more", count=f"{total - LISTED:,}")] if total > LISTED else []


def rejection_text(locale: str, rejected: Rejected) -> str:
    params = dict(rejected.params)
    if "field" in params:
        params["field"] = field_label(locale, params["field"])
    return t(locale, f"import.reason.{rejected.reason}", line=rejected.line, **params)


def field_label(locale: str, name: str) -> str:
    key = "card.tags" if name == "tag" else f"field.{name}"
    return t(locale, key) if key in catalogue("en") else name


# --- /import ---------------------------------------------------------------------------

@command("import", aliases=("导入",), takes_file=True)
async def import_(ctx: Context, args: str) -> Result:
    upload = ctx.request.file
    if upload is None:
        missing = [ctx.t("import.not_found", name=args[:80])] if args else []
        return Reply(text="\n".join([*missing, ctx.t("import.how")]), private=True)
    if len(upload.content) > MAX_BYTES:
        raise UserError("import.error.too_big", size=f"{len(upload.content) / 2**20:.1f}",
                        limit=MAX_BYTES // 2**20)
    table = read_csv(upload.content, ctx.locale, max_rows=MAX_ROWS)
    result = await transfer.import_table(ctx.session, ctx.ws, ctx.scope, table, now=ctx.now,
                                         progress=_progress_message(ctx), auto_tags=auto_tag_names())
    search, workspace_id, saved = ctx.services.search, ctx.ws.id, dict(result.saved)

    def index_saved() -> None:
        for customer_id, (name, company) in saved.items():
            search.note_saved(workspace_id, customer_id, name, company)

    ctx.after_commit(index_saved)
    return Reply(title=ctx.t("import.title", name=upload.name[:80]), text=summary(ctx.locale, result))


def _progress_message(ctx: Context) -> Callable[[int, int], Awaitable[None]] | None:
    """Report progress through the adapter every tenth of a long import (one message, edited)."""
    sink = ctx.request.progress
    if sink is None:
        return None
    shown = 0  # tenths already reported

    async def report(done: int, total: int) -> None:
        nonlocal shown
        step = done * PROGRESS_STEPS // total
        if total < PROGRESS_MIN_ROWS or step <= shown:
            return
        text = ctx.t("import.progress", done=f"{done:,}", total=f"{total:,}")
        await sink(Reply(text=text, edit=shown > 0))
        shown = step

    return report


# --- /export ----------------------------------------------------------------------------

@command("export", role="manager", aliases=("导出",))
async def export(ctx: Context, args: str) -> Result:
    private = for_the_asker(ctx, "export", "export.private_only")  # the whole book
    content = await transfer.export_csv(ctx.session, ctx.scope, export_headers(ctx.locale), tz=ctx.tz,
                                        stage_names=stage_names(ctx.locale))
    count = await transfer.count_visible(ctx.session, ctx.scope)
    name = f"customers-{ctx.local(ctx.now):%Y-%m-%d}.csv"
    text = ctx.t("export.done", count=f"{count:,}") if count else ctx.t("export.empty")
    return Reply(text=text, file=Attachment(name, content, "text/csv"), private=private)
