"""/import and /export: the customer book in and out of files (SPEC §6).

`/import` takes the file attached to the command (Telegram document, Slack file, a
local path in the console): CSV in any encoding, .xlsx, .xls or .vcf. When every
column is known it imports at once; otherwise it shows how the first rows would
land, with Import / Change / Cancel (handlers.mapping). The rows are written
after the command's own transaction, a batch per transaction (Context.later), so
other commands never wait behind a long import. `/export` (managers) answers with
CSV, or .xlsx with `/export xlsx`.

The texts are built per locale, not per request, so the command line
(`crm-bot import/export`) says the same things.
"""
from __future__ import annotations

from typing import Awaitable, Callable

from handlers import metrics
from handlers.context import Context, Transaction
from handlers.errors import UserError
from handlers.i18n import LOCALES, catalogue, t
from handlers.messages import Attachment, Reply
from handlers.registry import Result, command
from handlers.tags import auto_tag_names
from handlers.team import for_the_asker
from storage.access import Scope
from storage.models import Workspace
from storage.scoring import STAGES
from storage.standardise import tag as tag_name
from storage.transfer import export as exporting
from storage.transfer.columns import TARGETS, header_key
from storage.transfer.importer import ImportResult, import_rows
from storage.transfer.plan import BadMapping, Plan, TooManyRows, make_plan
from storage.transfer.sheets import FileProblem
from storage.transfer.values import RowReader

MAX_BYTES = 10 * 1024 * 1024
MAX_ROWS = 50_000
#: Lines of each kind a summary lists before "and N more".
LISTED = 20
#: Smaller imports finish too fast for a progress message to help.
PROGRESS_MIN_ROWS = 1_000
PROGRESS_STEPS = 10
_LABEL_KEYS = {"number": "export.column.number", "tags": "card.tags", "stage": "card.stage", "tier": "card.tier",
               "ltv": "card.ltv", "last_contact": "card.last_contact", "next_followup": "card.next_followup"}


# --- texts shared with the command line ----------------------------------------------

def export_headers(locale: str) -> dict[str, str]:
    """Column → header label of an export in `locale`."""
    return {column: t(locale, _LABEL_KEYS.get(column, f"field.{column}")) for column in exporting.EXPORT_COLUMNS}


def import_labels() -> dict[str, str]:
    """Folded header label → column, for the headers an export writes in any language: an export re-imports."""
    return {header_key(label): column for locale in LOCALES for column, label in export_headers(locale).items()}


def stage_names(locale: str) -> dict[str, str]:
    return {stage: t(locale, f"stage.{stage}") for stage in STAGES}


def stage_labels() -> dict[str, str]:
    """Stage label in any language → stage (the stage column an export writes)."""
    return {t(locale, f"stage.{stage}"): stage for locale in LOCALES for stage in STAGES}


def target_label(locale: str, target: str) -> str:
    return t(locale, f"import.target.{target}")


def target_labels() -> dict[str, str]:
    """What a person may call a target in `--map` or a button, in any language → target."""
    return {target_label(locale, target): target for locale in LOCALES for target in TARGETS}


def read_plan(content: bytes, name: str, locale: str, *, max_rows: int | None = None,
              changes: dict[str, str] | None = None) -> Plan:
    """The file ready to import; `UserError` (in `locale`'s terms) when it cannot be imported at all."""
    try:
        plan = make_plan(content, name, import_labels(), max_rows=max_rows)
        if changes:
            plan = plan.with_changes(changes, {target: label for label, target in target_labels().items()})
    except FileProblem as problem:
        raise UserError(f"import.error.{problem.reason}", **problem.params) from None
    except TooManyRows as over:
        raise UserError("import.error.too_many_rows", limit=f"{over.limit:,}") from None
    except BadMapping as bad:
        raise UserError(f"import.error.bad_{bad.what}", text=bad.text[:60],
                        targets=", ".join(target_label(locale, x) for x in TARGETS)) from None
    if not plan.rows:
        raise UserError("import.error.no_rows")
    return plan


def row_reader(plan: Plan, workspace: Workspace, locale: str, now) -> RowReader:  # type: ignore[no-untyped-def]
    suffix = t(locale, "import.own_tag_suffix")
    return RowReader(plan.mapping, workspace, now, auto_tags=auto_tag_names(),
                     rename_tag=lambda name: tag_name(f"{name}-{suffix}"), stage_names=stage_labels())


async def run_import(transaction: Transaction, plan: Plan, workspace: Workspace, scope: Scope, locale: str, now, *,  # type: ignore[no-untyped-def]
                     progress: Callable[[int, int], Awaitable[None] | None] | None = None,
                     saved: Callable[[dict[int, tuple[str, str | None]]], None] | None = None,
                     dry_run: bool = False) -> ImportResult:
    """Import the plan's rows as `scope`'s member, batch by batch (what every door runs)."""
    result = await import_rows(transaction, workspace, scope, plan.candidates(row_reader(plan, workspace, locale, now)),
                               now=now, total=plan.rows, progress=progress, saved=saved, dry_run=dry_run)
    result.unused_columns = list(plan.unused_with_values)
    if not dry_run:
        for outcome, rows in (("added", result.added), ("merged", result.merged), ("rejected", result.rejected_rows)):
            metrics.IMPORT_ROWS.labels(outcome).inc(rows)
    return result


def summary(locale: str, result: ImportResult) -> str:
    """What an import did: counts, who was merged into whom, possible duplicates, what went to the notes."""
    def say(key: str, **params: object) -> str:
        return t(locale, key, **params)

    sep = say("common.list_sep")
    lines = [say("import.counts_dry" if result.dry_run else "import.counts", rows=f"{result.rows:,}",
                 added=f"{result.added:,}", merged=f"{result.merged:,}", rejected=f"{result.rejected_rows:,}")]
    if result.merges:
        lines += ["", say("import.merged_title")]
        lines += [f"• {say('import.merged', line=m.line, name=m.name, number=m.number, into=m.into, why=say(f'import.by.{m.why}'))}"
                  for m in result.merges[:LISTED]]
        lines += _more(locale, result.merged)
    if result.duplicates:
        lines += ["", say("import.duplicates_title")]
        lines += [f"• {_duplicate(locale, d)}" for d in result.duplicates[:LISTED]]
        lines += _more(locale, len(result.duplicates))
    if result.flags:
        lines += ["", say("import.kept_title", rows=f"{result.flagged_rows:,}")]
        lines += [f"• {say('import.kept_line', line=line, field=field_label(locale, flag.field), value=flag.value[:60], why=why_text(locale, flag.key, flag.params))}"
                  for line, flag in result.flags[:LISTED]]
        lines += _more(locale, len(result.flags))
    if result.named_after:
        lines += ["", say("import.named_after", rows=sep.join(
            f"{line} ({field_label(locale, field)})" for line, field in result.named_after[:LISTED]))]
    if result.unmatched_owners:
        owners = sep.join(say("import.owner_row", owner=owner, rows=_lines(locale, rows))
                          for owner, rows in list(result.unmatched_owners.items())[:LISTED])
        lines += ["", say("import.owners_unmatched", owners=owners)]
    if result.unused_columns:
        lines += ["", say("import.unused_columns", columns=sep.join(result.unused_columns))]
    if result.placeholders:
        lines += ["", say("import.placeholders", count=f"{result.placeholders:,}")]
    if result.renamed_tags:
        lines += ["", say("import.renamed_tags", tags=sep.join(f"{a} → #{b}" for a, b in result.renamed_tags.items()))]
    if result.rejected:
        lines += ["", say("import.rejected_title")]
        lines += [f"• {say(f'import.reason.{r.reason}', line=r.line)}" for r in result.rejected[:LISTED]]
        lines += _more(locale, result.rejected_rows)
        lines.append(say("import.rejected_hint"))
    return "\n".join(lines)


def _duplicate(locale: str, duplicate) -> str:  # type: ignore[no-untyped-def]
    added = f"#{duplicate.number}" if duplicate.number is not None else t(locale, "import.not_yet_numbered")
    return t(locale, "import.duplicate", line=duplicate.line, name=duplicate.name, number=added,
             of_number=duplicate.of_number, of_name=duplicate.of_name, why=t(locale, f"import.same.{duplicate.why}"))


def _lines(locale: str, lines: list[int]) -> str:
    shown = ", ".join(str(line) for line in lines[:10])
    return shown + ("…" if len(lines) > 10 else "")


def _more(locale: str, total: int) -> list[str]:
    return [t(locale, "import.more", count=f"{total - LISTED:,}")] if total > LISTED else []


def why_text(locale: str, key: str, params: dict[str, str]) -> str:
    """The short reason a value went to the notes (a phone of no country, a date without a day …)."""
    short = key.replace("error.invalid.", "import.why.").replace("import.kept.", "import.why.")
    return t(locale, short if short in catalogue("en") else "import.why.invalid", **params)


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
        raise UserError("import.error.too_big", size=f"{len(upload.content) / 2**20:.1f}", limit=MAX_BYTES // 2**20)
    _ = ctx.scope  # a member of a book, before the file is read
    plan = read_plan(upload.content, upload.name, ctx.locale, max_rows=MAX_ROWS)
    if plan.needs_a_look:
        from handlers.mapping import ask_about  # the mapping step needs this module's texts: imported here
        return await ask_about(ctx, upload, plan)
    start_import(ctx, plan, upload.name)
    return []


def start_import(ctx: Context, plan: Plan, name: str) -> None:
    """Import `plan` once the command's transaction has committed; its summary answers."""
    workspace, scope, locale, now = ctx.ws, ctx.scope, ctx.locale, ctx.now
    search, progress = ctx.services.search, _progress_message(ctx)

    def index_saved(saved: dict[int, tuple[str, str | None]]) -> None:
        for customer_id, (customer_name, company) in saved.items():
            search.note_saved(workspace.id, customer_id, customer_name, company)

    async def work(transaction: Transaction) -> list[Reply]:
        result = await run_import(transaction, plan, workspace, scope, locale, now, progress=progress,
                                  saved=index_saved)
        return [Reply(title=t(locale, "import.title", name=name[:80]), text=summary(locale, result))]

    ctx.later(work)


def _progress_message(ctx: Context) -> Callable[[int, int], Awaitable[None]] | None:
    """Report progress through the adapter every tenth of a long import (one message, edited)."""
    sink = ctx.request.progress
    if sink is None:
        return None
    shown = 0  # tenths already reported
    locale = ctx.locale

    async def report(done: int, total: int) -> None:
        nonlocal shown
        step = done * PROGRESS_STEPS // total
        if total < PROGRESS_MIN_ROWS or step <= shown:
            return
        text = t(locale, "import.progress", done=f"{done:,}", total=f"{total:,}")
        await sink(Reply(text=text, edit=shown > 0))
        shown = step

    return report


# --- /export ----------------------------------------------------------------------------

@command("export", role="manager", aliases=("导出",))
async def export(ctx: Context, args: str) -> Result:
    private = for_the_asker(ctx, "export", "export.private_only")  # the whole book
    wanted = args.strip().casefold().lstrip(".")
    kind = "xlsx" if wanted in ("xlsx", "excel", "xls") else "csv"
    if wanted and wanted not in ("xlsx", "excel", "xls", "csv"):
        raise UserError("export.usage")
    write = exporting.export_xlsx if kind == "xlsx" else exporting.export_csv
    content = await write(ctx.session, ctx.scope, export_headers(ctx.locale), tz=ctx.tz,
                          stage_names=stage_names(ctx.locale))
    count = await exporting.count_visible(ctx.session, ctx.scope)
    name = f"customers-{ctx.local(ctx.now):%Y-%m-%d}.{kind}"
    done = ctx.t(f"export.done_{kind}" if kind == "xlsx" else "export.done", count=f"{count:,}")
    text = done if count else ctx.t("export.empty")
    return Reply(text=text, file=Attachment(name, content, exporting.MIME[kind]), private=private)
