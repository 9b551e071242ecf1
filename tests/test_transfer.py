"""/import and /export, and `crm-bot import/export`, on SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
import csv
import io
import random
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from rapidfuzz import fuzz, process
from sqlalchemy import func, select, text, update

import bot.cli
from bot.console import Console
from handlers.core import Core
from handlers.i18n import t
from handlers.messages import Attachment, Reply
from storage.transfer import export as exporting
from storage.customers import DUPLICATE_NAME_SCORE, han_reading
from storage.search import has_han
from storage.transfer.importer import ANALYZE_AFTER_ROWS, _Colleagues, _Record, import_rows
from storage.transfer.sheets import FileProblem
from storage.transfer.values import Candidate
from storage.access import Scope
from storage.db import Database
from storage.models import AuditEntry, Customer, CustomerTag, Member, Workspace
from tests.chat import Chat

FIXTURES = Path(__file__).with_name("fixtures")


def csv_file(name: str) -> Attachment:
    return Attachment(name, (FIXTURES / name).read_bytes(), "text/csv")


def upload(text: str, name: str = "customers.csv") -> Attachment:
    return Attachment(name, text.encode("utf-8"), "text/csv")


async def book(chat: Chat) -> dict[str, Customer]:
    """Every customer in the database (all workspaces) by name."""
    async with chat.core.db.transaction() as session:
        return {c.name: c for c in await session.scalars(select(Customer).order_by(Customer.number))}


async def manual_tags(chat: Chat, name: str) -> set[str]:
    async with chat.core.db.transaction() as session:
        rows = await session.scalars(select(CustomerTag.name).join(Customer, Customer.id == CustomerTag.customer_id)
                                     .where(Customer.name == name, CustomerTag.auto.is_(False)))
        return set(rows)


async def me(chat: Chat) -> Member:
    async with chat.core.db.transaction() as session:
        member = await session.scalar(select(Member).where(Member.name == chat.name))
        assert member is not None
        return member


async def importing_as(chat: Chat) -> tuple[Workspace, Scope]:
    """The console book, started by `chat`, and `chat`'s scope in it: what `import_rows` is called with."""
    await chat.say("/help")
    async with chat.core.db.transaction() as session:
        workspace = await session.scalar(select(Workspace))
    member = await me(chat)
    return workspace, Scope(workspace.id, member.id, member.role, workspace.visibility)


async def set_role(chat: Chat, role: str) -> None:
    async with chat.core.db.transaction() as session:
        await session.execute(update(Member).where(Member.name == chat.name).values(role=role))


# --- reading files ---------------------------------------------------------------------

async def test_gbk_file_with_chinese_headers_in_chinese(bob: Chat, alice: Chat) -> None:
    await alice.say("/help")  # alice is the admin; bob joins as a rep
    content = (FIXTURES / "customers-gbk.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        content.decode("utf-8")  # the fixture really is GBK
    await bob.say("/导入", file=csv_file("customers-gbk.csv"))
    text = bob.text
    assert "共 8 行：新增 7，合并到已有客户 1，未导入 0。" in text  # no row is lost for one cell
    assert "• 第 8 行 李伟 → #1 李伟（电话相同）" in text  # who went into whom
    assert "第 6 行：电话“12”：作为CN的电话号码太短" in text
    assert "没有姓名的行，以其他信息作为名称：7 (电话)。" in text
    assert "与系统自动标签同名的标签已改名保留：VIP → #vip-导入。" in text

    customers = await book(bob)
    assert list(customers) == ["李伟", "王芳", "张三", "+8613700137000", "赵六", "钱七", "王芳芳"]
    li = customers["李伟"]
    assert (li.phone, li.email, li.company, li.title, li.region) == (
        "+8613800138000", "li.wei@example.com", "华东贸易", "采购经理", "上海")
    assert li.prefs == "喜欢下午联系\n微信号: liwei88"  # a column that fits no field is kept in the notes
    assert li.owner_id == (await me(bob)).id
    assert await manual_tags(bob, "李伟") == {"重点", "vip-导入", "大客户", "老客户"}  # 、 and ， split; line 8 merged
    assert customers["王芳"].phone == "+862161234567"  # Excel's ="0…" kept the leading zero
    assert customers["张三"].phone is None and customers["张三"].prefs == "手机号: 12"
    assert customers["赵六"].email == "zhao@example.com" and customers["赵六"].prefs == "多行\n备注"
    assert [c.number for c in customers.values()] == [1, 2, 3, 4, 5, 6, 7]
    assert li.stage == "lead"  # derived data computed
    async with bob.core.db.transaction() as session:
        actions = list(await session.scalars(select(AuditEntry.action).where(AuditEntry.customer_id == li.id)))
    assert actions == ["import"]  # line 8 was merged in before the row was written

    await bob.say("/find liwei")  # the search index knows the new customers
    assert "#1 李伟" in bob.text


async def test_a_column_no_rule_knows_is_shown_before_anything_is_written(alice: Chat) -> None:
    await alice.say("/import", file=csv_file("customers-utf8-bom.csv"))
    [reply] = alice.last
    assert reply.title == "Import of customers-utf8-bom.csv: check the columns"
    assert "4 rows. This is how they will land:" in reply.text
    assert "Name ← Name · Company ← Company · Title ← Title · Phone ← Phone · E-mail ← E-mail" in reply.text
    assert "I don't know these columns, so they are left out unless you change them: Favourite colour (“green”)." \
        in reply.text
    assert reply.items[0] == "Smith, John · Acme Inc · CTO · +1 415-555-2671 · john@example.com"
    assert [b.label for b in reply.all_buttons()] == ["Import", "Change", "Cancel"]
    assert await book(alice) == {}  # nothing yet

    preview = alice.last
    await alice.press("Import")
    text = alice.text
    assert "Rows read: 4. Added: 4; merged into customers already in the book: 0; not imported: 0." in text
    assert "line 5: Birthday “1990-13-40”: not a date I can read" in text
    assert "Columns not imported: Favourite colour." in text
    assert "maybe the same person" in text and "line 4 Smith, Jon (#3): similar name at the same company as #1 Smith, John" in text
    john = (await book(alice))["Smith, John"]
    assert (john.phone, john.email, john.birthday.isoformat(), john.gender, john.source) == (
        "+14155552671", "john@example.com", "1980-02-29", "male", "trade fair")
    assert await manual_tags(alice, "Smith, John") == {"hot", "lead"}
    await alice.press("Import", preview)  # the same button again: the file is gone, nothing is imported twice
    assert alice.text == t("en", "error.choice_expired")
    assert len(await book(alice)) == 4


async def test_han_names_read_alike_at_one_company_are_listed_as_possible_duplicates(alice: Chat) -> None:
    """The rule /add asks "same person?" by (customers.alike_names): same pinyin at one company."""
    await alice.say("/add 王芳 company=华为")
    rows = "姓名,公司\n王方,华为\n黄芳,华为\n王方,腾讯\n刘洋,阿里巴巴\n柳杨,阿里巴巴\n"
    await alice.say("/import", file=upload(rows))
    text = alice.text
    assert "Added: 5;" in text
    assert "line 2 王方 (#2): similar name at the same company as #1 王芳" in text  # wáng fāng, typed by sound
    assert "line 6 柳杨 (#6): similar name at the same company as #5 刘洋" in text  # within the file too
    assert "黄芳 (#3)" not in text and "王方 (#4)" not in text  # another reading; another company
    async with alice.core.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Customer)) == 6  # listed, never folded in


def test_the_same_company_check_finds_what_one_fuzzy_pass_over_every_name_finds() -> None:
    """Short names are looked up, not scored (they reach the score only when equal): the customer
    found is the one a full rapidfuzz pass over all the company's names finds, pinyin after."""
    rng = random.Random(15)
    letters, han = "abcde ", "王方芳李丽伟"
    names = ["".join(rng.choice(letters) for _ in range(rng.randint(1, 9))).strip() or "a" for _ in range(300)]
    names += ["".join(rng.choice(han) for _ in range(rng.randint(1, 4))) for _ in range(200)]
    colleagues, records, folded = _Colleagues(), [], []
    for number, name in enumerate(names, start=1):
        reading = han_reading(name) if has_han(name) else None
        match = process.extractOne(name.casefold(), folded, scorer=fuzz.token_sort_ratio,
                                   score_cutoff=DUPLICATE_NAME_SCORE)
        expected = records[match[2]] if match is not None else next(
            (r for r in records if reading and has_han(r.name) and han_reading(r.name) == reading), None)
        assert colleagues.alike(name, reading) is expected, name
        record = _Record(None, number, 1, name, None, None)
        colleagues.add(record, reading)
        records.append(record)
        folded.append(name.casefold())


async def test_semicolon_delimited_file(alice: Chat) -> None:
    await alice.say("/import", file=csv_file("customers-semicolon.csv"))
    assert "Rows read: 2. Added: 2;" in alice.text
    anna = (await book(alice))["Anna Müller"]
    assert (anna.phone, anna.company, anna.prefs) == ("+49301234567", "Berlin GmbH", "prefers e-mail, mornings")


async def test_tab_delimited_utf16_with_a_formula_guard(alice: Chat) -> None:
    text = "姓名\t电话\t备注\r\n李伟\t138 0013 8000\t'=SUM(A1)\r\n"
    await alice.say("/import", file=Attachment("unicode.txt", text.encode("utf-16")))
    li = (await book(alice))["李伟"]
    assert (li.phone, li.prefs) == ("+8613800138000", "=SUM(A1)")


# --- merging ---------------------------------------------------------------------------------

async def test_duplicates_merge_into_existing_and_earlier_rows(alice: Chat) -> None:
    await alice.say("/add 李伟 13800138000 company=Acme")
    await alice.say("/tag 李伟 vip-lead")
    file = upload(
        "name,phone,email,company,title,tags\n"
        "Li Wei,+86 138 0013 8000,li@example.com,Other Co,CEO,hot\n"  # same phone as #1
        "Wang Fang,,wang@example.com,,,a\n"
        "W. Fang,13900139000,WANG@example.com,Huadong,,b\n"  # same e-mail as the row above
        "Fang W,13900139000,,,Buyer,\n"  # same phone as the row above (which got it by merging)
        "Zhao Liu,,,Acme,,\n"
    )
    await alice.say("/import", file=file)
    assert "Rows read: 5. Added: 2; merged into customers already in the book: 3;" in alice.text
    customers = await book(alice)
    assert list(customers) == ["李伟", "Wang Fang", "Zhao Liu"]
    li = customers["李伟"]
    assert (li.company, li.email, li.title) == ("Acme", "li@example.com", "CEO")  # filled, never overwritten
    assert await manual_tags(alice, "李伟") == {"vip-lead", "hot"}
    wang = customers["Wang Fang"]
    assert (wang.phone, wang.company, wang.title) == ("+8613900139000", "Huadong", "Buyer")
    assert await manual_tags(alice, "Wang Fang") == {"a", "b"}
    await alice.say("/history 李伟")
    assert "imported — Title: — → CEO; E-mail: — → li@example.com" in alice.text


async def test_rep_cannot_change_a_colleagues_customer_by_import(alice: Chat, bob: Chat) -> None:
    await alice.say("/add 李伟 13800138000")
    await bob.say("/import", file=upload("姓名,电话,职位\n李伟,13800138000,经理\n王芳,13900139000,\n"))
    assert "第 2 行：电话或邮箱属于其他销售的客户，未作修改" in bob.text
    customers = await book(alice)
    assert customers["李伟"].title is None and customers["王芳"].owner_id == (await me(bob)).id


async def test_other_workspace_is_never_merged_into(alice: Chat, core: Core) -> None:
    await alice.say("/add 李伟 13800138000 company=Acme")
    carol = Chat(core, user_id="carol", name="Carol", space="other-team")
    await carol.say("/import", file=upload("name,phone,title\nLi Wei,13800138000,CEO\n"))
    assert "Added: 1; merged into customers already in the book: 0;" in carol.text
    customers = await book(alice)
    assert customers["李伟"].title is None and customers["Li Wei"].number == 1  # carol's own #1
    await alice.say("/export")
    assert "Li Wei" not in alice.last[0].file.content.decode("utf-8-sig")


# --- bad files --------------------------------------------------------------------------------

@pytest.mark.parametrize("content, expected", [
    (b"", "The file is empty"),
    (b"name,phone\n\n", "no customers under it"),
    (b"PK\x03\x04rest-of-a-zip", "I couldn't open that workbook"),
    (b"\xd0\xcf\x11\xe0rest-of-an-ole-file", "I couldn't read that old Excel file"),
    (bytes(range(128, 256)) * 4, "I couldn't read that file as text with confidence (I tried UTF-8, GBK/GB18030"),
])
async def test_files_that_cannot_be_imported(alice: Chat, content: bytes, expected: str) -> None:
    await alice.say("/import", file=Attachment("x.csv", content))
    assert expected in alice.text
    assert await book(alice) == {}


async def test_a_file_without_a_column_of_names_asks_for_one(alice: Chat) -> None:
    await alice.say("/import", file=upload("phone,email\n13800138000,a@example.com\n"))
    assert "No column holds the customers' names. Press Change and pick the column of names." in alice.text
    assert [b.label for b in alice.last[0].all_buttons()] == ["Change", "Cancel"]  # no Import until there is one
    await alice.press("Cancel")
    assert alice.text == "Import of customers.csv cancelled. Nothing was changed."
    assert await book(alice) == {}


async def test_too_big_and_too_many_rows_are_refused(alice: Chat) -> None:
    await alice.say("/import", file=Attachment("big.csv", b"name\n" + b"x" * (10 * 1024 * 1024)))
    assert "That file is 10.0 MB; I import files up to 10 MB." in alice.text
    await alice.say("/import", file=Attachment("long.csv", b"name\n" + b"x\n" * 50_001))
    assert "That file has more than 50,000 rows; I import up to 50,000 at a time." in alice.text
    assert await book(alice) == {}


async def test_without_a_file_says_how(alice: Chat, bob: Chat) -> None:
    await alice.say("/import")
    assert "Attach a file to /import" in alice.text and "/import path/to/customers.csv" in alice.text
    await alice.say("/import nowhere.csv")
    assert alice.text.startswith("I couldn't find the file “nowhere.csv”.")
    await bob.say("/import")
    assert "请把文件附在 /import 上发送" in bob.text


async def test_many_flagged_rows_are_listed_up_to_twenty(alice: Chat) -> None:
    rows = "".join(f"n{i},bad-phone-{i}\n" for i in range(25))
    await alice.say("/import", file=upload("name,phone\n" + rows))
    assert "Rows read: 25. Added: 25;" in alice.text  # each row lands, its phone kept in its notes
    assert "line 2: Phone “bad-phone-0”: not a phone number" in alice.text
    assert "line 21: Phone" in alice.text and "line 22: Phone" not in alice.text
    assert "… and 5 more." in alice.text
    assert (await book(alice))["n0"].prefs == "phone: bad-phone-0"


# --- progress ---------------------------------------------------------------------------------

async def test_long_import_shows_progress_in_one_edited_message(alice: Chat) -> None:
    shown: list[Reply] = []

    async def progress(reply: Reply) -> None:
        shown.append(reply)

    file = upload("name\n" + "".join(f"c{i}\n" for i in range(2_000)))
    await alice.send(alice.request(text="/import", file=file, progress=progress))
    # a tenth of the file at a time (a batch is 200 rows), the first message edited after that
    assert [r.text for r in shown] == [f"Importing… {n:,}/2,000 rows" for n in range(200, 2001, 200)]
    assert [r.edit for r in shown] == [False] + [True] * 9
    assert "Rows read: 2,000. Added: 2,000;" in alice.text
    async with alice.core.db.transaction() as session:  # scored 400 at a time, then the rest
        new = select(func.count()).select_from(CustomerTag).where(CustomerTag.name == "new", CustomerTag.auto)
        assert await session.scalar(new) == 2_000


async def test_a_file_unreadable_half_way_keeps_the_batches_written_before(alice: Chat) -> None:
    """Batches are written while the next rows are read: a row the reader cannot read stops the import
    after the batches before it are committed and handed to the search index, as row by row would."""
    workspace, scope = await importing_as(alice)

    def rows():
        for line in range(2, 452):
            yield Candidate(line, {"name": f"c{line}"})
        raise FileProblem("malformed", line=452)

    indexed: list[int] = []
    with pytest.raises(FileProblem):
        await import_rows(alice.core.db.transaction, workspace,
                          scope, rows(),
                          now=datetime.now(ZoneInfo("UTC")), total=450, batch_rows=200,
                          saved=lambda ids: indexed.extend(ids))
    async with alice.core.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Customer)) == 400
        new = select(func.count()).select_from(CustomerTag).where(CustomerTag.name == "new", CustomerTag.auto)
        assert await session.scalar(new) == 400  # scored, though fewer than SCORED_TOGETHER were written
    assert len(indexed) == 400


async def test_postgresql_plans_each_batch_for_the_book_as_it_is_then(alice: Chat) -> None:
    """The book grows by the whole file during an import: PostgreSQL would switch a prepared
    statement to a generic plan after five runs, one made for the empty book (100,000 rows took
    325 s instead of 45). Every batch's statements get a plan of their own."""
    if alice.core.db.is_sqlite:
        pytest.skip("PostgreSQL's plan cache")
    workspace, scope = await importing_as(alice)
    rows = (Candidate(line, {"name": f"c{line}", "company": "Acme"}) for line in range(2, 42))
    await import_rows(alice.core.db.transaction, workspace,
                      scope, rows,
                      now=datetime.now(ZoneInfo("UTC")), total=40, batch_rows=2)
    async with alice.core.db.transaction() as session:
        plans = (await session.execute(text(
            "SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0) FROM pg_prepared_statements"
            " WHERE statement LIKE 'INSERT INTO customers%' OR statement LIKE 'INSERT INTO audit_log%'"))).one()
    assert plans[1] >= 20 and plans[0] == 0


async def test_postgresql_has_fresh_statistics_after_a_big_import(alice: Chat) -> None:
    """Until autovacuum's ANALYZE came round, PostgreSQL planned for the near-empty book it had seen:
    `/find` in a freshly imported 100,000-customer book walked the workspace (200 ms, not 1). An import
    of ANALYZE_AFTER_ROWS rows or more analyses the tables it filled; a small one leaves that to autovacuum."""
    if alice.core.db.is_sqlite:
        pytest.skip("PostgreSQL's statistics")
    workspace, scope = await importing_as(alice)

    async def analysed() -> bool:
        async with alice.core.db.transaction() as session:
            return await session.scalar(text(
                "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'customers'"))

    small = (Candidate(line, {"name": f"s{line}"}) for line in range(2, 12))
    await import_rows(alice.core.db.transaction, workspace, scope, small, now=datetime.now(ZoneInfo("UTC")), total=10)
    assert not await analysed()
    big = (Candidate(line, {"name": f"c{line}"}) for line in range(2, ANALYZE_AFTER_ROWS + 2))
    await import_rows(alice.core.db.transaction, workspace, scope, big, now=datetime.now(ZoneInfo("UTC")),
                      total=ANALYZE_AFTER_ROWS)
    assert await analysed()


async def test_console_attaches_the_file_named_last(alice: Chat, tmp_path: Path) -> None:
    path = tmp_path / "sample.csv"
    path.write_bytes((FIXTURES / "customers-semicolon.csv").read_bytes())
    console = Console(alice.core, default_locale="en")
    console.language = "en"
    request = console.parse(f"/import {path}")
    assert request.text == "/import" and request.file is not None and request.file.name == "sample.csv"
    await alice.send(request)
    assert "Added: 2;" in alice.text


# --- export -----------------------------------------------------------------------------------

async def test_export_is_for_managers_with_bom_and_member_language(alice: Chat, bob: Chat) -> None:
    await alice.say("/add 李伟 13800138000 li@example.com company=华东贸易 birthday=1988-05-03")
    await alice.say("/tag 李伟 重点 hot")
    await alice.say("/add Formula Guy prefs==SUM(A1)")
    await bob.say("/export")
    assert "这需要经理及以上的角色" in bob.text

    await alice.say("/export")
    reply = alice.last[0]
    assert reply.file is not None and reply.file.name == "customers-2026-11-18.csv" and reply.file.mime == "text/csv"
    assert reply.text.startswith("Customers exported: 2.")
    content = reply.file.content
    assert content.startswith(b"\xef\xbb\xbf")
    lines = content.decode("utf-8-sig").splitlines()
    assert lines[0] == ("#,Name,Company,Title,Phone,E-mail,Address,Region,Industry,Company size,Gender,Birthday,"
                        "Source,Tags,Preferences,Stage,Value tier,Lifetime value (est.),Last contact,"
                        "Next follow-up,Owner")
    assert lines[1].startswith("1,李伟,华东贸易,,138 0013 8000,li@example.com,")
    assert ",1988-05-03,,hot 重点,,lead,,,,,Alice" in lines[1]
    assert lines[2].endswith(",'=SUM(A1),lead,,,,,Alice")  # Excel won't run it as a formula

    await set_role(bob, "manager")
    await bob.say("/export")
    header = bob.last[0].file.content.decode("utf-8-sig").splitlines()[0]
    assert header.startswith("编号,姓名,公司,职位,电话,邮箱") and header.endswith("最近联系,下次跟进,负责人")
    assert "已导出 2 位客户" in bob.text


async def test_export_in_a_group_is_refused_for_a_private_chat(core: Core) -> None:
    """Everyone in a group would get the whole book's file (reps under visibility=own too)."""
    group = {"platform": "telegram", "space": "-100555", "chat_id": "-100555", "private": False}
    erin = Chat(core, user_id="erin", name="Erin", **group)
    chen = Chat(core, user_id="chen", name="陈", language="zh", **group)
    await erin.say("/add Acme")
    await chen.say("/add 华东贸易")
    await erin.say("/role 陈 manager")
    await erin.say("/export")
    [reply] = erin.last
    assert reply.file is None and reply.private
    assert erin.text == ("The export holds the whole customer book, and everyone in this chat would see it. "
                         "Send /export in a private chat with the bot.")
    await chen.say("/导出")
    assert chen.last[0].file is None and "请私聊机器人发送 /export" in chen.text
    dm = Chat(core, user_id="erin", name="Erin", platform="telegram", space=None)
    await dm.say("/export")
    assert dm.last[0].file is not None and "Customers exported: 2" in dm.text and not dm.last[0].private


async def test_export_in_a_channel_that_can_answer_privately_goes_to_the_asker_alone(core: Core) -> None:
    """Slack: an ephemeral answer, the file in the asker's direct messages."""
    channel = Chat(core, user_id="U1", name="Una", platform="slack", space="T1", chat_id="C1", private=False)
    await channel.say("/add Acme")
    [reply] = await channel.send(channel.request(text="/export", answers_privately=True))
    assert reply.private and reply.file is not None and "Customers exported: 1" in reply.text
    replies = await channel.send(channel.request(text="/digest", answers_privately=True))
    assert replies and all(r.private for r in replies)


async def test_export_holds_only_what_the_scope_sees(db: Database, alice: Chat, bob: Chat) -> None:
    await alice.say("/add Alice Customer")
    await bob.say("/add Bob Customer")
    async with db.transaction() as session:
        await session.execute(update(Workspace).values(visibility="own"))
    bob_member = await me(bob)
    async with db.transaction() as session:
        own = Scope(bob_member.workspace_id, bob_member.id, "rep", "own")
        content = await exporting.export_csv(session, own, {})
        assert await exporting.count_visible(session, own) == 1
    rows = content.decode("utf-8-sig").splitlines()
    assert len(rows) == 2 and "Bob Customer" in rows[1]


async def test_an_export_reimports_as_merges_only(alice: Chat, bob: Chat) -> None:
    await alice.say("/import", file=csv_file("customers-semicolon.csv"))
    await alice.say("/add 李伟 13800138000 company=华东贸易 region=上海 gender=男 birthday=1988-05-03 prefs==SUM(A1)")
    await alice.say("/tag 李伟 重点 hot")
    await bob.say("/help")
    await set_role(bob, "manager")
    before = await book(alice)
    async with alice.core.db.transaction() as session:
        audited = await session.scalar(select(func.count()).select_from(AuditEntry))
    for chat, expected in ((alice, "Rows read: 3. Added: 0; merged into customers already in the book: 3; not imported: 0."),
                           (bob, "共 3 行：新增 0，合并到已有客户 3，未导入 0。")):
        await chat.say("/export")
        await chat.say("/import", file=chat.last[0].file)
        assert expected in chat.text
        assert "Columns I don't know" not in chat.text and "不认识的列" not in chat.text
    after = await book(alice)
    assert {name: (c.number, c.phone, c.birthday, c.prefs, c.updated_at) for name, c in after.items()} == \
        {name: (c.number, c.phone, c.birthday, c.prefs, c.updated_at) for name, c in before.items()}
    assert await manual_tags(alice, "李伟") == {"重点", "hot"}
    async with alice.core.db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(AuditEntry)) == audited  # nothing changed


# --- the command line -------------------------------------------------------------------------

def test_cli_import_and_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)

    assert bot.cli.main(["import", str(FIXTURES / "customers-semicolon.csv")]) == bot.cli.EXIT_FAILED  # no workspace

    async def first_use() -> None:
        from handlers.context import Services
        from storage.search import CustomerSearch
        database = Database(url)
        await database.upgrade()
        services = Services(clock=clock, search=CustomerSearch(clock), default_locale="en")
        await Chat(Core(database, services), user_id="alice", name="Alice").say("/help")
        await database.dispose()

    asyncio.run(first_use())
    assert bot.cli.main(["import", str(FIXTURES / "customers-semicolon.csv")]) == 0
    assert bot.cli.main(["import", str(FIXTURES / "customers-gbk.csv")]) == 0  # every row lands
    assert bot.cli.main(["import", str(tmp_path / "missing.csv")]) == bot.cli.EXIT_FAILED
    no_such_workspace = ["import", str(FIXTURES / "customers-semicolon.csv"), "--workspace", "9"]
    assert bot.cli.main(no_such_workspace) == bot.cli.EXIT_FAILED

    async def stored() -> list[tuple[str, str]]:
        database = Database(url)
        async with database.transaction() as session:
            rows = await session.execute(select(Customer.name, Member.name).join(Member, Member.id == Customer.owner_id)
                                         .order_by(Customer.number))
            found = [tuple(row) for row in rows]
        await database.dispose()
        return found

    names = asyncio.run(stored())
    assert names[:3] == [("Anna Müller", "Alice"), ("Jean Dupont", "Alice"), ("李伟", "Alice")]
    assert len(names) == 9

    out = tmp_path / "book.csv"
    assert bot.cli.main(["export", str(out)]) == 0
    content = out.read_bytes()
    assert content.startswith(b"\xef\xbb\xbf") and len(list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))) == 10
    assert bot.cli.main(["export"]) == 0
    today = datetime.now(ZoneInfo("Asia/Shanghai"))  # the workspace's time zone
    assert [p.name for p in tmp_path.glob("customers-*.csv")] == [f"customers-{today:%Y-%m-%d}.csv"]


async def test_exporting_an_empty_book_gives_the_columns_as_a_template(alice: Chat) -> None:
    await alice.say("/export")
    assert "No customers to export yet" in alice.text
    header = alice.last[0].file.content.decode("utf-8-sig").splitlines()
    assert len(header) == 1 and header[0].startswith("#,Name")


async def test_the_summary_counts_every_row_left_out_not_only_those_it_lists(alice: Chat) -> None:
    """The summary lists the first rows it left out; its count is all of them (it said 200 of 250)."""
    rows = "".join(f",call back {n}\n" for n in range(250))  # nothing to name the customer by: left out
    await alice.say("/import", file=upload("Name,Notes\nAnn Lee,met at the fair\n" + rows))
    if any(b.label == "Import" for b in alice.last[0].all_buttons()):
        await alice.press("Import")
    assert "Rows read: 251. Added: 1; merged into customers already in the book: 0; not imported: 250." in alice.text
    assert "… and 230 more." in alice.text  # 20 rows are listed
