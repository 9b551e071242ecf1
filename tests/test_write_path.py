"""Issue 13, the write path: what a command costs in statements and in hand-offs to another thread, and
the sightings written at most once a minute. Counts, not timings (those are bench/core.py's)."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import Select, delete, event, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.cache_key import HasCacheKey
from sqlalchemy.sql.compiler import SQLCompiler

from handlers.core import cleanup
from storage import audit
from storage.db import Database
from storage.db_thread import DatabaseThread
from storage.models import (AuditEntry, Customer, CustomerTag, Identity, Member, ProcessedUpdate, ReceivedUpdate,
                            Workspace)
from tests.chat import Chat

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=timezone.utc)
#: A `/log … next: …` of a known customer, with its redelivery key (BEGIN included): 24 before issue 13.
LOG_STATEMENTS = 12


class Sent:
    """Statements both engines send, calls to aiosqlite's worker thread (`hand_offs`) and to the
    database thread (`to_thread`), while counting."""

    def __init__(self, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
        self.statements = self.hand_offs = self.to_thread = 0
        self.seen: list[str] = []
        for engine in {db.engine, db.command_engine}:
            event.listen(engine.sync_engine, "before_cursor_execute", self._statement)
        to_aiosqlite, to_thread = aiosqlite.Connection._execute, DatabaseThread.run

        async def counted(connection: aiosqlite.Connection, function: Any, *args: Any, **kwargs: Any) -> Any:
            self.hand_offs += 1
            return await to_aiosqlite(connection, function, *args, **kwargs)

        async def run(thread: DatabaseThread, function: Any, *args: Any) -> Any:
            self.to_thread += 1
            return await to_thread(thread, function, *args)

        monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
        monkeypatch.setattr(DatabaseThread, "run", run)

    def _statement(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        self.statements += 1
        self.seen.append(statement)

    def reset(self) -> None:
        self.statements = self.hand_offs = self.to_thread = 0


async def test_a_log_with_a_next_follow_up_sends_at_most_12_statements(
    alice: Chat, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await alice.say("/add 李伟 company=Acme")
    await alice.say("/log 李伟 call: first", update_key="warm-up")
    sent = Sent(db, monkeypatch)
    await alice.say("/log 李伟 call: talked about the price next: friday", update_key="u-1")
    assert "Logged for #1 李伟" in alice.text
    assert sent.statements <= LOG_STATEMENTS


async def test_an_add_reads_neither_the_new_customers_entries_nor_its_derived_fields_back(
    alice: Chat, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A customer added in this transaction has no log, deal or feedback for its card to read, and the
    refresh after the INSERT writes what changes (UPDATE … RETURNING) of values the session knows: 12
    statements, BEGIN included (18 before)."""
    await alice.say("/add 李伟 company=Acme")
    sent = Sent(db, monkeypatch)
    await alice.say("/add 王芳 company=Globex", update_key="u-1")
    card = alice.last[-1]
    assert card.title.startswith("#2 王芳")
    assert any(f.label == "Auto tags" and "new" in f.value.split() for f in card.fields)  # after the refresh
    reads = [s for s in sent.seen if s.lstrip().upper().startswith("SELECT")]
    assert not [s for s in reads if re.search(r"FROM (interactions|purchases|feedback)\b", s)], reads
    assert sent.statements <= LOG_STATEMENTS, sent.seen


@pytest.mark.parametrize("command", ["/log 李伟 call: talked about the price next: friday", "/show 李伟", "/tag 李伟 key-account",
                                     "/find 李伟"])
async def test_the_everyday_commands_compute_no_statements_cache_key_afresh(
    alice: Chat, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """A statement built per call, or DML run through the ORM (which annotates it afresh), has its cache
    key computed again on every command: building and keying the first query alone took ~0.4 ms a
    command, the scoring refresh's UPDATEs more. These commands' statements are built once."""
    await alice.say("/add 李伟 company=Acme")
    await alice.say("/log 李伟 call: first next: monday", update_key="warm-up")
    await alice.say(command, update_key="warm-up 2")  # a statement built once is keyed on its first run
    keyed: list[str] = []
    original = HasCacheKey._generate_cache_key

    def keying(statement: HasCacheKey) -> Any:
        keyed.append(f"{type(statement).__name__}: {' '.join(str(statement).split())[:60]}")
        return original(statement)

    monkeypatch.setattr(HasCacheKey, "_generate_cache_key", keying)
    await alice.say(command, update_key="u-1")
    assert "李伟" in alice.text and "error" not in alice.text.lower()
    assert keyed == []


@pytest.mark.parametrize("command", ["/log 李伟 call: talked about the price next: friday", "/show 李伟",
                                     "/tag 李伟 vip-lead", "/find 李伟", "/find Acme", "/add 王芳 company=Acme"])
async def test_the_everyday_commands_build_no_statement(
    alice: Chat, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """Building a SELECT (`scope.customers()` and its WHEREs) costs ≈ 80 µs, as much as running one: these
    commands' statements are all built once, a lookup by name built one it did not use."""
    await alice.say("/add 李伟 company=Acme")
    await alice.say("/log 李伟 call: first next: monday", update_key="warm-up")
    await alice.say(command.replace("王芳", "张伟"), update_key="warm-up 2")
    built: list[str] = []
    original = Select.__init__

    def building(statement: Select[Any], *args: Any, **kwargs: Any) -> None:
        built.append(repr(args)[:80])
        original(statement, *args, **kwargs)

    monkeypatch.setattr(Select, "__init__", building)
    await alice.say(command, update_key="u-1")
    assert ("王芳" if command.startswith("/add") else "李伟") in alice.text and "error" not in alice.text.lower()
    assert built == []


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
async def test_a_command_on_a_sqlite_file_is_one_hand_off_to_the_database_thread(
    alice: Chat, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command's statements, commit included, run on the database thread (storage.db_thread), which
    calls sqlite3 itself: one hand-off there and back for the whole command, none per statement."""
    await alice.say("/add 李伟 company=Acme")
    sent = Sent(db, monkeypatch)
    await alice.say("/log 李伟 call: talked about the price next: friday", update_key="u-1")
    assert "Next follow-up" in alice.text
    assert sent.statements > 10 and (sent.to_thread, sent.hand_offs) == (1, 0), (sent.to_thread, sent.hand_offs)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
async def test_each_statement_on_the_loop_is_one_hand_off_to_aiosqlite(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A transaction on the adapters' loop (the scheduler's, a lease's) opens, executes, fetches and closes a
    cursor in one call to aiosqlite's thread (storage.sqlite_one_hop): its statements plus the commit, not
    four calls each, and no rollback as a connection whose transaction was committed goes back to the pool."""
    async with db.transaction() as session:  # the first connection's PRAGMAs are not counted
        await session.scalar(select(func.count()).select_from(Customer))
    sent = Sent(db, monkeypatch)
    async with db.transaction() as session:
        await session.scalar(select(func.count()).select_from(Customer))
        session.add(ProcessedUpdate(key="on the loop", processed_at=NOW))
    assert sent.statements == 3 and sent.hand_offs == sent.statements + 1, (sent.hand_offs, sent.statements)


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
@pytest.mark.parametrize("where", ["loop", "database thread"])
async def test_a_connection_back_in_the_pool_with_a_transaction_still_open_is_rolled_back(db: Database, where: str) -> None:
    """The pool no longer rolls back every connection it takes back (a hand-off each time): one SQLite
    still holds a transaction on, begun behind SQLAlchemy's back, is rolled back all the same."""

    async def begin_behind_its_back() -> None:
        engine = db.command_engine if where == "database thread" else db.engine
        async with engine.connect() as conn:
            sqlite = (await conn.get_raw_connection()).driver_connection
            sql = ("BEGIN IMMEDIATE",
                   "INSERT INTO processed_updates (key, processed_at) VALUES ('behind its back', '2026-12-03')")
            for statement in sql:
                if where == "database thread":
                    sqlite._conn.execute(statement)
                else:
                    await sqlite.execute(statement)
        async with db.transaction() as session:  # would wait for the write lock, then fail, were it still held
            session.add(ProcessedUpdate(key="after", processed_at=NOW))

    await (db.on_thread(begin_behind_its_back) if where == "database thread" else begin_behind_its_back())
    async with db.transaction() as session:
        keys = set(await session.scalars(select(ProcessedUpdate.key)))
    assert "after" in keys and "behind its back" not in keys


async def last_seen(chat: Chat) -> tuple[Any, Any]:
    async with chat.core.db.transaction() as session:
        member = await session.scalar(select(Member.last_seen_at))
        identity = await session.scalar(select(Identity.last_seen_at))
        return member, identity


async def test_a_sighting_is_written_at_most_once_a_minute(alice: Chat, clock: Any) -> None:
    await alice.say("/help")
    first = clock.now
    assert await last_seen(alice) == (first, first)
    clock.advance(seconds=50)
    await alice.say("/help")
    assert await last_seen(alice) == (first, first)  # within the minute: not written again
    later = clock.advance(seconds=11)
    await alice.say("/help")
    assert await last_seen(alice) == (later, later)


#: The everyday commands, as the tests of their statements type them.
EVERYDAY = ["/log 李伟 call: talked about the price next: friday", "/show 李伟", "/tag 李伟 vip-lead",
            "/add 李伟伟 company=Acme phone=13900139000", "/add Li Wei company=acme", "/find 李伟", "/find Acme"]


async def _sent_by(alice: Chat, db: Database, command: str) -> list[tuple[str, Any]]:
    """The SELECT, UPDATE, DELETE and INSERT statements (and their values) `command` sends."""
    statements: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if not many and statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "INSERT")):
            statements.append((statement, parameters))

    event.listen(db.command_engine.sync_engine, "before_cursor_execute", record)
    try:
        await alice.say(command, update_key="u-1")
    finally:
        event.remove(db.command_engine.sync_engine, "before_cursor_execute", record)
    return statements


#: Tables that grow with the book: a command that walks one costs more as the book grows.
BOOK_TABLES = r"customers|customer_tags|interactions|reminders|purchases|feedback|audit_log|deals"


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
@pytest.mark.parametrize("command", EVERYDAY)
async def test_the_everyday_commands_seek_rows_and_never_walk_the_book(
    alice: Chat, db: Database, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """Every statement of /log, /show, /tag, /add and /find by name seeks its rows by an index (SQLite's plan: neither a
    scan of a table nor of a whole workspace's part of an index), so their
    cost stays flat from 1,000 to 100,000 customers (bench/core.py); "same person?" at /add once
    scanned the book for customers at the same company (84 ms at 100,000)."""
    await alice.say("/add 李伟 company=Acme")
    await alice.say("/log 李伟 call: first", update_key="warm-up")
    if command.startswith("/find"):  # /find 李伟 and /find Acme find many: an IN of 25 ids
        for n in range(24):
            await alice.say(f"/add 李伟{'明亮'[n % 2]}{n} company=Acme")
    await alice.say("/find Acme")  # the search index loads the book's names once per process
    statements = await _sent_by(alice, db, command)
    assert "#" in alice.text
    walks = []
    async with db.engine.connect() as connection:
        for statement, parameters in statements:
            if re.match(r"\s*INSERT INTO \w+ \([^)]*\) VALUES", statement):
                # one row's INSERT … RETURNING: its plan shows the scans of the tables whose foreign keys
                # name the new row, which SQLite only runs to settle a deferred constraint's violations
                # (none is deferred here; an /add took as long with 200,000 audit entries as with none)
                continue
            for *_, detail in await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters):
                if re.match(rf"(SCAN ({BOOK_TABLES})\b|SEARCH ({BOOK_TABLES}) .*\(workspace_id=\?\)$)", detail):
                    walks.append((detail, " ".join(statement.split())[:160]))
    assert len(statements) > 3 and walks == []


@pytest.mark.parametrize("db", ["sqlite"], indirect=True)
@pytest.mark.parametrize("command", EVERYDAY)
async def test_no_everyday_statement_binds_a_value_a_partial_index_compares_with_a_literal(
    alice: Chat, db: Database, command: str
) -> None:
    """SQLite prepares a statement again on every run when it compares a bound value with a column that a
    partial index's WHERE compares with a literal (`status = 'pending'`), in case the value matches:
    60-130 µs more on each run of the scoring refresh's UPDATE. These statements write such values into
    their SQL (storage.models.REMINDER_PENDING)."""
    async with db.engine.connect() as connection:
        indexes = list(await connection.exec_driver_sql(
            "SELECT tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql LIKE '% WHERE %'"))
    compared = {(table, column) for table, sql in indexes
                for column in re.findall(r"\b(\w+) = '", sql.split(" WHERE ", 1)[1])}
    assert ("reminders", "status") in compared
    await alice.say("/add 李伟 company=Acme")
    await alice.say("/log 李伟 call: first next: monday", update_key="warm-up")
    statements = await _sent_by(alice, db, command)
    assert "#" in alice.text
    bound = [" ".join(statement.split())[:160] for statement, _ in statements for table, column in compared
             if re.search(rf"\b{table}\.{column} (=|!=|<>|IN) \(?\?", statement)]
    assert len(statements) > 3 and bound == []


@pytest.mark.parametrize("who", [
    dict(user_id="alice"),  # a member, in the book's space
    dict(user_id="carol"),  # first words in a space whose book exists
    dict(user_id="dave", space="another-team"),  # first words in a space with no book yet
    dict(user_id="alice", space=None),  # a member's private chat
    dict(user_id="erin", space=None),  # a stranger's private chat
])
async def test_the_first_query_reads_the_redelivery_key_and_an_update_is_applied_once(
    alice: Chat, db: Database, who: dict[str, Any]
) -> None:
    """The membership query reads the redelivery key beside the membership (one statement saved on every
    request); where it finds no row (no membership to read), the key is read on its own: either way a
    redelivered update changes nothing and gets its kept replies again."""
    await alice.say("/help")
    person = Chat(alice.core, name=who["user_id"].title(), **who)
    request = person.request(text="/add Zed Example", update_key="u-again", reports_answers=True)
    first = await person.send(request)
    async with db.transaction() as session:
        before = await session.scalar(select(func.count()).select_from(Customer))
        workspaces_before = await session.scalar(select(func.count()).select_from(Workspace))
    again = await person.send(request)
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Customer)) == before
        assert await session.scalar(select(func.count()).select_from(Workspace)) == workspaces_before
    assert first and [r.plain_text() for r in again] == [r.plain_text() for r in first]


async def test_a_form_open_in_the_chat_is_read_with_the_membership(
    alice: Chat, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Free text mid-form answers the form: the form comes with the membership, no query of its own."""
    await alice.say("/add")
    assert "?" in alice.text  # the guided form asks for the name
    sent = Sent(db, monkeypatch)
    await alice.say("Zed Example")
    assert "(2/" in alice.text  # the name was taken: the next question
    conversations = [s for s in sent.seen if s.lstrip().upper().startswith("SELECT") and "FROM conversations" in s]
    assert conversations == []


async def test_audit_entries_wait_for_one_insert_yet_every_read_and_delete_sees_them(alice: Chat, db: Database) -> None:
    """A command's audit entries go out together (a /log's two in one INSERT), but never later than a
    statement that reads or writes the trail or deletes rows, and a rollback drops them."""
    await alice.say("/add 李伟 company=Acme")
    async with db.transaction() as session:
        workspace_id = await session.scalar(select(Workspace.id))
        customer_id = await session.scalar(select(Customer.id))
        count = select(func.count()).select_from(AuditEntry)
        before = await session.scalar(count)
        audit.record(session, workspace_id=workspace_id, member_id=None, action="test", at=NOW, customer_id=customer_id)
        assert await session.scalar(count) == before + 1  # a read of the trail sees it
        audit.record(session, workspace_id=workspace_id, member_id=None, action="test", at=NOW, customer_id=customer_id)
        await session.execute(delete(CustomerTag).where(CustomerTag.customer_id == customer_id))
        rows = (await session.execute(select(AuditEntry.id).where(AuditEntry.action == "test"))).all()
        assert len(rows) == 2  # written before the delete went
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            audit.record(session, workspace_id=workspace_id, member_id=None, action="dropped", at=NOW)
            raise RuntimeError("the command failed")
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "dropped")) == 0
        assert await session.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "test")) == 2


async def test_the_nightly_cleanup_drops_week_old_redelivery_keys_and_received_updates(
    alice: Chat, db: Database, clock: Any
) -> None:
    """A received update a poller never handled (and never will) goes after a week, as old redelivery
    keys do; newer ones stay for the replay."""
    await alice.say("/help", update_key="u-old")
    async with db.transaction() as session:
        session.add(ReceivedUpdate(source="telegram:1", key="telegram:1:7", payload="{}", received_at=clock.now))
    clock.advance(days=6)
    async with db.transaction() as session:
        session.add(ReceivedUpdate(source="telegram:1", key="telegram:1:8", payload="{}", received_at=clock.now))
    clock.advance(days=2)
    await cleanup(db, alice.core.services)
    async with db.transaction() as session:
        assert list(await session.scalars(select(ReceivedUpdate.key))) == ["telegram:1:8"]
        assert await session.scalar(select(func.count()).select_from(ProcessedUpdate)) == 0


async def test_a_log_writes_its_rows_without_the_orm_working_through_a_flush(
    alice: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interaction, the reminder and the redelivery key go in by INSERTs built once (storage.rows),
    and a sighting within the minute leaves the member and account untouched: the session has nothing
    to flush (a flush sorted, wrote and set up each new row: ~0.2 ms a row)."""
    await alice.say("/add 李伟 company=Acme")
    await alice.say("/log 李伟 call: first", update_key="warm-up")
    flushed: list[str] = []

    def before_flush(session: Session, *_: Any) -> None:
        flushed.extend(f"{type(row).__name__}" for row in [*session.new, *session.dirty, *session.deleted])

    event.listen(Session, "before_flush", before_flush)
    try:
        await alice.say("/log 李伟 call: talked about the price next: friday", update_key="u-1")
    finally:
        event.remove(Session, "before_flush", before_flush)
    assert "Logged for #1 李伟" in alice.text and "Next follow-up" in alice.text
    assert flushed == []
    async with alice.core.db.transaction() as session:
        assert await session.get(ProcessedUpdate, "u-1") is not None


async def test_one_customers_refresh_names_it_by_id_not_by_a_list_expanded_on_every_run(
    alice: Chat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLAlchemy writes an IN list's parameters into the SQL afresh on every execution (its
    post-compile pass over the statement's text): the refresh after an event, for one customer, is
    `id = ?` instead."""
    await alice.say("/add 李伟 company=Acme")
    await alice.say("/tag #1 first", update_key="warm-up")
    expanded: list[str] = []
    original = SQLCompiler._process_parameters_for_postcompile

    def expanding(compiler: SQLCompiler, *args: Any, **kwargs: Any) -> Any:
        expanded.append(" ".join(compiler.string.split())[:80])
        return original(compiler, *args, **kwargs)

    monkeypatch.setattr(SQLCompiler, "_process_parameters_for_postcompile", expanding)
    await alice.say("/tag #1 key-account", update_key="u-1")
    assert "key-account" in alice.text
    assert expanded == []


async def test_a_card_reads_each_latest_entry_with_its_number_in_one_statement(
    alice: Chat, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The card numbers the latest log, deal and feedback (`log 2`, `deal 1`): each comes with its number
    from one statement, not a read and then a count."""
    await alice.say("/add 李伟 company=Acme")
    await alice.say("/log 李伟 call: first")
    await alice.say("/log 李伟 visit: second")
    await alice.say("/deal 李伟 1.2万 annual licence")
    await alice.say("/feedback 李伟 4 quick")
    sent = Sent(db, monkeypatch)
    await alice.say("/show 李伟", update_key="u-1")
    card = alice.last[-1]
    labels = [button.label for row in card.buttons for button in row]
    assert any("log 2" in label for label in labels) and any("deal 1" in label for label in labels), labels
    assert any("feedback 1" in label for label in labels), labels
    counts = [s for s in sent.seen if re.match(r"\s*SELECT count\(\*\)", s)]
    assert counts == [], counts
